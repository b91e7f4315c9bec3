"""A real (tiny) DPO run on the local base model: the adapter learns to prefer what it was taught, on held-out
pairs, by the log-probability margins transformers and PEFT compute."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from jobs.data import parse_jsonl
from jobs.hyperparameters import resolve_hyperparameters
from jobs.trainer import run_training
from jobs.training_spec import TrainingSpec
from tests.jobs.test_trainer import BASE_ID, Recorder

TOPICS = [
    "the moon", "volcanoes", "honey bees", "the Nile", "glaciers", "owls", "comets", "coral reefs",
    "bamboo", "lightning", "penguins", "deserts", "tides", "maple trees", "octopuses", "rainbows",
]  # fmt: skip
HELD_OUT = ["sharks", "the Sahara", "thunder", "tulips", "Jupiter", "salmon"]


def pair(topic: str) -> dict:
    return {
        "input": {"messages": [{"role": "user", "content": f"Tell me one fact about {topic}."}]},
        "preferred_output": [{"role": "assistant", "content": f"Certainly! Here is a fact about {topic}."}],
        "non_preferred_output": [{"role": "assistant", "content": "No. Ask someone else."}],
    }


def margin(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, topic: str) -> float:
    """log p(preferred answer) - log p(non-preferred answer), given the prompt."""
    example = pair(topic)
    prompt = tokenizer.apply_chat_template(example["input"]["messages"], add_generation_prompt=True, return_dict=False)
    scores = []
    for key in ("preferred_output", "non_preferred_output"):
        full = tokenizer.apply_chat_template(example["input"]["messages"] + example[key], return_dict=False)
        ids = torch.tensor([full])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        answer = range(len(prompt) - 1, len(full) - 1)
        scores.append(sum(float(logits[i, full[i + 1]]) for i in answer))
    return scores[0] - scores[1]


@pytest.fixture(scope="module")
def trained(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recorder]:
    examples = parse_jsonl("\n".join(json.dumps(pair(topic)) for topic in TOPICS).encode())
    raw = {"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-3, "lora_r": 8, "lora_alpha": 16, "beta": 0.1}
    hyperparameters, _ = resolve_hyperparameters(raw, n_examples=len(examples))
    spec = TrainingSpec(
        base_model_path=str(model_dir),
        output_dir=str(tmp_path_factory.mktemp("dpo")),
        train_examples=examples,
        hyperparameters=hyperparameters,
        base_model_id=BASE_ID,
        seed=3,
        threads=2,
        method="dpo",
    )
    reporter = Recorder()
    result = run_training(spec, reporter)
    return Path(result.adapter_path), reporter


def test_the_adapter_prefers_what_it_was_taught_on_held_out_pairs(
    trained: tuple[Path, Recorder], model_dir: Path, tokenizer: PreTrainedTokenizerBase
) -> None:
    adapter, _ = trained
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    before = statistics.mean(margin(base, tokenizer, topic) for topic in HELD_OUT)
    tuned = PeftModel.from_pretrained(base, adapter)
    after = statistics.mean(margin(tuned, tokenizer, topic) for topic in HELD_OUT)
    assert after > before + 5.0, (before, after)


def test_a_dpo_run_reports_metrics_and_checkpoints(trained: tuple[Path, Recorder]) -> None:
    _, reporter = trained
    assert [row.step for row in reporter.rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert reporter.rows[-1].train_loss < reporter.rows[0].train_loss
    assert [(step, epoch) for step, epoch, _, _ in reporter.checkpoints] == [(4, 1), (8, 2)]
