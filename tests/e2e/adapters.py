"""Builds a real PEFT LoRA adapter on the default model, with random (non-identity) weights so that
its answers visibly differ from the base model's."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tests.e2e.platform import REPO

BASE_DIR = REPO / "var" / "cache" / "SmolLM2-135M-Instruct"


def build_random_adapter(target: Path, base_model_id: str, *, rank: int = 8, seed: int = 0, scale: float = 8.0) -> Path:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(scale)
    staging = target.with_name(f".{target.name}.tmp")
    peft_model.save_pretrained(staging)
    config_file = staging / "adapter_config.json"
    adapter_config = json.loads(config_file.read_text())
    adapter_config["base_model_name_or_path"] = base_model_id
    config_file.write_text(json.dumps(adapter_config))
    staging.rename(target)
    return target


def reference_greedy(adapter: Path | None, messages: list[dict], tokens: int) -> list[tuple[str, float]]:
    """(token text, logprob) of the greedy continuation computed by transformers + PEFT, the reference
    that the engine's LoRA path must reproduce."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BASE_DIR)
    model = AutoModelForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=False)
    steps = []
    with torch.no_grad():
        for _ in range(tokens):
            logprobs = torch.log_softmax(model(ids).logits[0, -1], dim=-1)
            token = int(torch.argmax(logprobs))
            steps.append((tokenizer.decode([token]), float(logprobs[token])))
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return steps


def reference_prompt_logprobs(adapter: Path | None, ids: list[int]) -> list[float]:
    """Each prompt token's logprob given the tokens before it (from the second token on), computed by
    transformers + PEFT: what an echoed prompt's `token_logprobs` must hold."""
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    return [float(logprobs[position - 1, token]) for position, token in enumerate(ids) if position > 0]
