"""Validation during a run, as OpenAI reports it: `valid_loss` and `valid_mean_token_accuracy` over one sampled batch
of the validation set at each metrics point, `full_valid_loss` and `full_valid_mean_token_accuracy` over the whole set
at each epoch's end. The run evaluates the model itself rather than through the Trainer's evaluation loop, which can
only evaluate one fixed set at fixed step intervals: the whole set at every step cost steps x set size."""

from __future__ import annotations

import random

import torch
from transformers import PreTrainedModel

from jobs.data import IGNORE, TokenizedExample


class Scores:
    """Token-weighted mean loss and next-token accuracy over the labelled tokens of some examples."""

    def __init__(self, loss: float, mean_token_accuracy: float) -> None:
        self.loss = loss
        self.mean_token_accuracy = mean_token_accuracy


class Validation:
    """A run's validation set; `batch_size` examples make a sampled batch (all of them where the set is smaller)."""

    def __init__(
        self, examples: list[TokenizedExample], *, batch_size: int, device_batch: int, pad_token_id: int, seed: int
    ) -> None:
        if not examples:
            raise ValueError("a validation set needs at least one example")
        self.examples = examples
        self.batch_size = min(batch_size, len(examples))
        self.device_batch = max(1, device_batch)
        self.pad_token_id = pad_token_id
        self.seed = seed

    def sampled(self, model: PreTrainedModel, step: int) -> Scores:
        """One batch drawn for `step` (the same batch for the same seed and step, so a resumed run reports alike)."""
        batch = random.Random(f"{self.seed}:{step}").sample(self.examples, self.batch_size)
        return self._evaluate(model, batch)

    def full(self, model: PreTrainedModel) -> Scores:
        return self._evaluate(model, self.examples)

    def _evaluate(self, model: PreTrainedModel, examples: list[TokenizedExample]) -> Scores:
        was_training = model.training
        model.eval()
        loss_sum, correct, counted = 0.0, 0, 0
        try:
            with torch.no_grad():
                for start in range(0, len(examples), self.device_batch):
                    chunk = examples[start : start + self.device_batch]
                    input_ids, labels, attention = self._padded(chunk, next(model.parameters()).device)
                    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
                    targets = labels[:, 1:]
                    learned = targets != IGNORE
                    losses = torch.nn.functional.cross_entropy(
                        logits.transpose(1, 2), targets.clamp(min=0), reduction="none"
                    )
                    loss_sum += float(losses[learned].sum())
                    correct += int((logits.argmax(-1) == targets)[learned].sum())
                    counted += int(learned.sum())
        finally:
            model.train(was_training)
        if counted == 0:
            return Scores(float("nan"), float("nan"))
        return Scores(loss_sum / counted, correct / counted)

    def _padded(
        self, examples: list[TokenizedExample], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(example.input_ids) for example in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            size = len(example.input_ids)
            input_ids[row, :size] = torch.tensor(example.input_ids)
            labels[row, :size] = torch.tensor(example.labels)
            attention[row, :size] = 1
        return input_ids.to(device), labels.to(device), attention.to(device)
