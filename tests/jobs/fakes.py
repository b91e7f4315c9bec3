"""A scripted stand-in for the trainer, for fast tests of job logic only (the e2e tests train for real)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from engines.adapter_cache import publish_adapter
from engines.artifacts import ArtifactStore
from jobs.errors import TrainerLost, TrainingCancelled, TrainingPaused
from jobs.progress import CheckpointReport, MetricsReport, Progress
from jobs.results import StepMetrics
from jobs.training_spec import TrainingResult, TrainingSpec
from jobs.training_state import SavedCheckpoint, save_state


class FakeRun:
    """A run that reports what it is told to and finishes when `finish()` is called. It ignores cancels unless
    `obeys_cancel`, like a real run whose last step check is already behind it. On a pause it saves a state at its
    last reported step, like a real one; `lose()` makes it end as a run whose process died."""

    def __init__(self, job_id: str, spec: TrainingSpec, artifacts: ArtifactStore | None, *, obeys_cancel: bool) -> None:
        self.job_id = job_id
        self.spec = spec
        self.artifacts = artifacts
        self.obeys_cancel = obeys_cancel
        self.reports: list[Progress] = []
        self.rows: list[StepMetrics] = list(spec.resume_from.rows) if spec.resume_from else []
        self.checkpoints: list[SavedCheckpoint] = list(spec.resume_from.checkpoints) if spec.resume_from else []
        self.cancelled = False
        self.paused = False
        self.killed = False
        self._lost = False
        self._finished = threading.Event()

    def report_step(self, row: StepMetrics, *, total_steps: int, checkpoint: bool = False, state: bool = False) -> None:
        """Reports a step; `checkpoint` saves a checkpoint then, `state` also keeps the training state there."""
        self.reports.append(MetricsReport(row, total_steps))
        self.rows.append(row)
        if checkpoint:
            path = Path(self.spec.output_dir) / "checkpoints" / f"step-{row.step}"
            self.reports.append(CheckpointReport(row.step, 1, str(path), row))
            self.checkpoints.append(SavedCheckpoint(step=row.step, epoch=1, path=str(path), digest=None, metrics=row))
        if state:
            self.save_state(row.step)

    def save_state(self, step: int) -> None:
        assert self.artifacts is not None, "give the FakeLauncher the artifact store to save states"
        folder = Path(self.spec.output_dir) / f"checkpoint-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
        epochs = len(self.checkpoints)
        save_state(
            self.artifacts, self.job_id, folder, step=step, epochs_done=epochs, rows=self.rows, checkpoints=self.checkpoints
        )

    def finish(self) -> None:
        self._finished.set()

    def lose(self) -> None:
        self._lost = True

    async def result(self) -> TrainingResult:
        while not self._finished.is_set():
            if self._lost:
                raise TrainerLost("The trainer was lost (ActorDiedError)", code="trainer_lost")
            if self.cancelled and self.obeys_cancel:
                raise TrainingCancelled("Training was cancelled")
            if self.paused:
                if self.rows and self.artifacts is not None:
                    self.save_state(self.rows[-1].step)
                raise TrainingPaused("Training was paused")
            await asyncio.sleep(0.02)
        adapter = Path(self.spec.output_dir) / "adapter"
        adapter.mkdir(parents=True, exist_ok=True)
        digest = None
        if self.artifacts is not None:  # published as a real run publishes its adapter
            config = {"r": self.spec.hyperparameters.lora_r, "lora_alpha": 8, "target_modules": ["v_proj", "q_proj"]}
            (adapter / "adapter_config.json").write_text(json.dumps(config))
            (adapter / "adapter_model.safetensors").write_bytes(self.job_id.encode())
            digest = publish_adapter(self.artifacts, adapter)
        return TrainingResult(
            adapter_path=str(adapter),
            trained_tokens=100,
            steps=1,
            final_loss=0.5,
            tokens_per_second=10.0,
            elapsed_s=1.0,
            step_metrics=[],
            adapter_digest=digest,
        )

    async def drain(self) -> list[Progress]:
        reports, self.reports = self.reports, []
        return reports

    def cancel(self) -> None:
        self.cancelled = True

    def pause(self) -> None:
        self.paused = True

    def kill(self) -> None:
        self.killed = True


class FakeLauncher:
    """Starts FakeRuns; by default they train until the test finishes them. `runs` has each job's latest run,
    `started` all of them in order; with `artifacts` set, runs save states there as real ones do."""

    def __init__(self, *, obeys_cancel: bool = True) -> None:
        self.obeys_cancel = obeys_cancel
        self.artifacts: ArtifactStore | None = None
        self.runs: dict[str, FakeRun] = {}
        self.started: list[FakeRun] = []

    def start(self, job_id: str, spec: TrainingSpec) -> FakeRun:
        run = FakeRun(job_id, spec, self.artifacts, obeys_cancel=self.obeys_cancel)
        self.runs[job_id] = run
        self.started.append(run)
        return run
