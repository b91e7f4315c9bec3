"""A scripted stand-in for the trainer, for fast tests of job logic only (the e2e tests train for real)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from jobs.errors import TrainingCancelled
from jobs.progress import CheckpointReport, MetricsReport, Progress
from jobs.results import StepMetrics
from jobs.trainer import TrainingResult, TrainingSpec


class FakeRun:
    """A run that reports what it is told to and finishes when `finish()` is called. It ignores cancels unless
    `obeys_cancel`, like a real run whose last step check is already behind it."""

    def __init__(self, spec: TrainingSpec, *, obeys_cancel: bool) -> None:
        self.spec = spec
        self.obeys_cancel = obeys_cancel
        self.reports: list[Progress] = []
        self.cancelled = False
        self.killed = False
        self._finished = threading.Event()

    def report_step(self, row: StepMetrics, *, total_steps: int, checkpoint: bool = False) -> None:
        self.reports.append(MetricsReport(row, total_steps))
        if checkpoint:
            path = Path(self.spec.output_dir) / "checkpoints" / f"step-{row.step}"
            self.reports.append(CheckpointReport(row.step, 1, str(path), row))

    def finish(self) -> None:
        self._finished.set()

    async def result(self) -> TrainingResult:
        while not self._finished.is_set():
            if self.cancelled and self.obeys_cancel:
                raise TrainingCancelled("Training was cancelled")
            await asyncio.sleep(0.02)
        adapter = Path(self.spec.output_dir) / "adapter"
        adapter.mkdir(parents=True, exist_ok=True)
        return TrainingResult(
            adapter_path=str(adapter),
            trained_tokens=100,
            steps=1,
            final_loss=0.5,
            tokens_per_second=10.0,
            elapsed_s=1.0,
            step_metrics=[],
        )

    async def drain(self) -> list[Progress]:
        reports, self.reports = self.reports, []
        return reports

    def cancel(self) -> None:
        self.cancelled = True

    def kill(self) -> None:
        self.killed = True


class FakeLauncher:
    """Starts FakeRuns; by default they train until the test finishes them."""

    def __init__(self, *, obeys_cancel: bool = True) -> None:
        self.obeys_cancel = obeys_cancel
        self.runs: dict[str, FakeRun] = {}

    def start(self, job_id: str, spec: TrainingSpec) -> FakeRun:
        run = FakeRun(spec, obeys_cancel=self.obeys_cancel)
        self.runs[job_id] = run
        return run
