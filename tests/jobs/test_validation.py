"""Validation scores against transformers' own loss on the real base model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from jobs.data import parse_jsonl, tokenize_examples
from jobs.validation import Validation

LINES = b"\n".join(
    b'{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s"}]}' % pair
    for pair in [
        (b"Name a colour.", b"Teal."),
        (b"What is two plus two?", b"Two plus two is four."),
        (b"Say hello in French.", b"Bonjour, comment allez-vous ?"),
        (b"What is the capital of Iceland?", b"Reykjavik is the capital of Iceland."),
    ]
)


@pytest.fixture(scope="module")
def model(model_dir: Path) -> AutoModelForCausalLM:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def validation(tokenizer: PreTrainedTokenizerBase, batch_size: int) -> Validation:
    examples = tokenize_examples(parse_jsonl(LINES), tokenizer, 128)
    return Validation(examples, batch_size=batch_size, device_batch=3, pad_token_id=tokenizer.eos_token_id, seed=1)


def test_the_whole_set_scores_as_transformers_token_weighted_loss(model, tokenizer: PreTrainedTokenizerBase) -> None:
    check = validation(tokenizer, batch_size=2)
    loss_sum, tokens = 0.0, 0
    for example in check.examples:
        labels = torch.tensor([example.labels])
        learned = int((labels[:, 1:] != -100).sum())
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([example.input_ids]), labels=labels).loss
        loss_sum, tokens = loss_sum + float(loss) * learned, tokens + learned

    scores = check.full(model)

    assert scores.loss == pytest.approx(loss_sum / tokens, rel=1e-4)
    assert 0.0 < scores.mean_token_accuracy < 1.0
    assert model.training is False  # as it was: from_pretrained leaves a model in eval mode


def test_a_sampled_batch_is_the_same_for_a_step_and_differs_between_steps(model, tokenizer: PreTrainedTokenizerBase) -> None:
    check = validation(tokenizer, batch_size=2)
    model.train()
    first, again = check.sampled(model, 5), check.sampled(model, 5)
    assert model.training is True
    assert first.loss == again.loss
    assert len({check.sampled(model, step).loss for step in range(8)}) > 1
