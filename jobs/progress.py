"""What a training run reports while it runs, and how the scheduler drives a run wherever it is: the
`TrainerLauncher` starts one (a Ray actor in the platform, a scripted stand-in in fast tests) and the
`TrainingRun` it returns is polled for progress, cancelled, and awaited for its result."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec

from jobs.records import EventLevel
from jobs.results import StepMetrics
from jobs.training_spec import TrainingResult, TrainingSpec
from jobs.training_state import SavedCheckpoint


class MetricsReport(msgspec.Struct, frozen=True):
    row: StepMetrics
    total_steps: int


class CheckpointReport(msgspec.Struct, frozen=True):
    step: int
    epoch: int
    path: str
    metrics: StepMetrics | None
    digest: str | None = None
    """The checkpoint's adapter as published in the artifact store."""


class MessageReport(msgspec.Struct, frozen=True):
    level: EventLevel
    text: str


Progress = MetricsReport | CheckpointReport | MessageReport


class BufferedReporter:
    """The trainer's Reporter: collects a run's progress until the scheduler drains it."""

    def __init__(self) -> None:
        self._reports: deque[Progress] = deque()
        self.cancelled = threading.Event()
        self.paused = threading.Event()

    def metrics(self, row: StepMetrics, total_steps: int) -> None:
        # A copy: the trainer fills in the row's validation values later.
        self._reports.append(MetricsReport(msgspec.structs.replace(row), total_steps))

    def checkpoint(self, step: int, epoch: int, path: str, metrics: StepMetrics | None) -> str | None:
        row = metrics and msgspec.structs.replace(metrics)
        digest = self.publish(Path(path))
        self._reports.append(CheckpointReport(step, epoch, path, row, digest))
        return digest

    def publish(self, path: Path) -> str | None:
        """Where a trainer has an artifact store, puts the adapter at `path` there and returns its digest."""
        return None

    def save_state(
        self, step: int, epochs_done: int, path: str, rows: list[StepMetrics], checkpoints: list[SavedCheckpoint]
    ) -> None:
        """Where a trainer has an artifact store, keeps the training state there (`jobs.training_state`)."""

    def message(self, level: str, text: str) -> None:
        """`level` as logging names it ("warning"), kept as a job event's level ("warn")."""
        event_level: EventLevel = "warn" if level in ("warn", "warning") else "error" if level == "error" else "info"
        self._reports.append(MessageReport(event_level, text))

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()

    def should_pause(self) -> bool:
        return self.paused.is_set()

    def extend(self, reports: list[Progress]) -> None:
        """Progress a run elsewhere reported (a data-parallel run's rank 0), in its order."""
        self._reports.extend(reports)

    def drain(self) -> list[Progress]:
        reports = []
        while self._reports:
            reports.append(self._reports.popleft())
        return reports


class TrainingRun(Protocol):
    async def result(self) -> TrainingResult:
        """The run's result. Raises TrainingCancelled or TrainingPaused when it stopped for a cancel or a pause,
        TrainerLost when its process went away, or else the run's own failure."""
        ...

    async def drain(self) -> list[Progress]:
        """Progress reported since the last drain; empty when the run cannot be reached."""
        ...

    def cancel(self) -> None:
        """Asks the run to stop at its next step."""
        ...

    def pause(self) -> None:
        """Asks the run to save its state and stop at its next step."""
        ...

    def kill(self) -> None:
        """Stops the run now, wherever it is."""
        ...


class TrainerLauncher(Protocol):
    def start(self, job_id: str, spec: TrainingSpec) -> TrainingRun: ...
