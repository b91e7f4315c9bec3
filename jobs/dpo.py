"""DPO with TRL's DPOTrainer on OpenAI's preference format. The reference model is the base itself: with a LoRA
adapter, TRL computes the reference log-probabilities with the adapter disabled, so no second copy of the model is
held. TRL renders and tokenizes the conversations with the model's chat template."""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import DPOConfig

from jobs.data import Example


def preference_dataset(examples: list[Example]) -> Dataset:
    """TRL's conversational preference rows: the prompt's messages, then the chosen and the rejected answer."""
    return Dataset.from_list(
        [
            {
                "prompt": [message.template_dict() for message in example.messages],
                "chosen": [message.template_dict() for message in example.preferred],
                "rejected": [message.template_dict() for message in example.non_preferred],
            }
            for example in examples
        ]
    )


def preference_tokens(examples: list[Example], tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """The tokens one epoch reads: each prompt with its preferred and with its non-preferred answer."""
    total = 0
    for example in examples:
        for answer in (example.preferred, example.non_preferred):
            conversation = [message.template_dict() for message in (*example.messages, *answer)]
            total += min(max_length, len(tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=False)))
    return total


def dpo_config(common: dict[str, Any], *, beta: float, max_length: int) -> DPOConfig:
    return DPOConfig(**common, beta=beta, max_length=max_length)
