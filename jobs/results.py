"""A run's per-step metrics, as the trainer records them and as OpenAI shows them: the result file (OpenAI's
per-step metrics CSV), the data of metrics events, and checkpoint metrics, which name one value differently
(`train_accuracy` in the CSV, `train_mean_token_accuracy` elsewhere)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import msgspec

from jobs.records import CheckpointMetrics

COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


class StepMetrics(msgspec.Struct, kw_only=True):
    """One metrics point of a run."""

    step: int
    train_loss: float
    train_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    """Over the whole validation set, at the last step of an epoch."""
    full_valid_mean_token_accuracy: float | None = None

    def event_data(self, total_steps: int) -> dict[str, Any]:
        """The `data` of a `metrics` job event, named as OpenAI's."""
        return {
            "step": self.step,
            "total_steps": total_steps,
            "train_loss": self.train_loss,
            "train_mean_token_accuracy": self.train_accuracy,
            "valid_loss": self.valid_loss,
            "valid_mean_token_accuracy": self.valid_mean_token_accuracy,
            "full_valid_loss": self.full_valid_loss,
            "full_valid_mean_token_accuracy": self.full_valid_mean_token_accuracy,
        }

    def checkpoint_metrics(self) -> CheckpointMetrics:
        return CheckpointMetrics(
            step=self.step,
            train_loss=self.train_loss,
            train_mean_token_accuracy=self.train_accuracy,
            valid_loss=self.valid_loss,
            valid_mean_token_accuracy=self.valid_mean_token_accuracy,
            full_valid_loss=self.full_valid_loss,
            full_valid_mean_token_accuracy=self.full_valid_mean_token_accuracy,
        )


def metrics_csv(step_metrics: Iterable[StepMetrics]) -> bytes:
    """One row a metrics step; cells are empty where a value is absent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in step_metrics:
        writer.writerow(["" if getattr(row, name) is None else getattr(row, name) for name in COLUMNS])
    return out.getvalue().encode()
