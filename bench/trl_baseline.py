"""Scenario 4's baseline: the bare TRL + PEFT script a user would write instead of a fine-tuning job,
on the same chat data and hyperparameters. Prints one JSON line: tokens trained, loop seconds, tokens/s.

    python -m bench.trl_baseline --data train.jsonl --epochs 3 --batch-size 8 --learning-rate 2e-3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from bench.servers import MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()

    with open(args.data) as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory() as output_dir:
        config = SFTConfig(
            output_dir=output_dir,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
            assistant_only_loss=False,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora
        )
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * args.epochs
        started = time.monotonic()
        trainer.train()
        loop_s = time.monotonic() - started
    final_loss = next((entry["loss"] for entry in reversed(trainer.state.log_history) if "loss" in entry), None)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        json.dumps(
            {
                "trained_tokens": tokens,
                "loop_s": round(loop_s, 2),
                "tokens_per_second": round(tokens / loop_s, 2),
                "final_loss": final_loss,
                "threads": torch.get_num_threads(),
                "device": device,
            }
        )
    )


if __name__ == "__main__":
    main()
