"""What a training run takes (`TrainingSpec`), reports to (`Reporter`) and returns (`TrainingResult`).

Kept apart from jobs.trainer so that the processes which only plan, schedule and record runs (the control plane,
the gateways) never import torch, transformers or TRL: each of those imports cost the platform's start about 5 s
of CPU while the engine was starting on the same cores."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from jobs.data import Example
from jobs.hyperparameters import ResolvedHyperparameters
from jobs.results import StepMetrics
from jobs.training_state import SavedCheckpoint, StateManifest


class Reporter(Protocol):
    """Where a run reports progress; `should_cancel` and `should_pause` are polled after every optimizer step."""

    def metrics(self, row: StepMetrics, total_steps: int) -> None: ...

    def checkpoint(self, step: int, epoch: int, path: str, metrics: StepMetrics | None) -> str | None:
        """Reports the checkpoint adapter saved at `path`; returns its digest where it was published."""
        ...

    def save_state(
        self, step: int, epochs_done: int, path: str, rows: list[StepMetrics], checkpoints: list[SavedCheckpoint]
    ) -> None:
        """Keeps the Trainer checkpoint folder `path` (weights, optimizer, scheduler, counters) to resume from."""
        ...

    def message(self, level: str, text: str) -> None: ...

    def should_cancel(self) -> bool: ...

    def should_pause(self) -> bool: ...


class TrainingSpec(msgspec.Struct, frozen=True):
    base_model_path: str
    output_dir: str
    train_examples: list[Example]
    hyperparameters: ResolvedHyperparameters
    base_model_id: str  # written into adapter_config.json as base_model_name_or_path
    validation_examples: list[Example] = []
    seed: int = 42
    threads: int | None = None  # torch.set_num_threads; None keeps the process's setting
    metrics_every: int = 1  # optimizer steps between metrics (and validation) points
    resume_from: StateManifest | None = None  # a saved state to continue from, instead of the start
    init_adapter: str | None = None  # the digest of a published adapter to train further, instead of a new one
    method: Literal["supervised", "dpo"] = "supervised"  # DPO's examples are in the preference format


class TrainingResult(msgspec.Struct, frozen=True):
    adapter_path: str
    trained_tokens: int  # tokens processed: input lengths x epochs
    steps: int
    final_loss: float | None
    tokens_per_second: float  # over the training loop of this run only (a resumed run counts its own steps)
    elapsed_s: float  # the whole run, model loading included
    step_metrics: list[StepMetrics]  # rows of the result CSV (jobs.results.metrics_csv)
    adapter_digest: str | None = None  # the final adapter as published in the artifact store
