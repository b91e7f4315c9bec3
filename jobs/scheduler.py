"""Runs fine-tuning jobs: validates their files, queues them until the resource plan has room, trains each
through the launcher (a Ray actor placed with training's share of the cluster), and records progress,
checkpoints and results. Every status it writes is conditional on the status it read, so a cancel answered
by the API is never overturned.

A run resumes from the job's latest saved training state (`jobs.training_state`): when the job was paused, when
the platform restarted while it trained, and when its trainer was lost (a killed process, a lost node). Each
loss counts as a try; a job whose trainer keeps being lost fails after `max_attempts` tries."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog

from engines.adapter_cache import published_config
from engines.core.errors import PlatformError
from jobs.data import check_method
from jobs.datasets import load_examples
from jobs.errors import TrainerLost, TrainingCancelled, TrainingPaused
from jobs.files import FileService
from jobs.hyperparameters import inherit_lora, resolve_hyperparameters
from jobs.journal import JobJournal
from jobs.progress import CheckpointReport, MetricsReport, TrainerLauncher, TrainingRun
from jobs.records import (
    FineTuningJob,
)
from jobs.slots import TrainingSlots
from jobs.store import Store
from jobs.training_spec import TrainingResult, TrainingSpec
from jobs.training_state import latest_state

log = structlog.get_logger("jobs.scheduler")

CANCEL_GRACE_S = 15.0
PAUSE_GRACE_S = 120.0
POLL_S = 1.0


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    owner: str
    fine_tuned_model: str
    output_dir: str
    hyperparameters: dict[str, Any]
    copy_to: str | None = None
    lost_runs: int = 0
    """Runs of this job that died with their trainer (or with the platform) before they finished."""
    base_model: str | None = None
    """The base model the adapter adapts (None in contexts stored before continued training: the job's model)."""
    continue_from: str | None = None
    """The digest of the fine-tuned adapter a continued job starts from; None for a new adapter."""
    method: Literal["supervised", "dpo"] = "supervised"


class Scheduler:
    def __init__(
        self,
        store: Store,
        files: FileService,
        launcher: TrainerLauncher,
        *,
        base_model_path: str,
        data_roots: list[Path],
        capacity: Callable[[], int],
        training_threads: int,
        has_gpu: bool,
        max_lora_rank: int,
        max_attempts: int,
    ) -> None:
        self.store = store
        self.files = files
        self.journal = JobJournal(store, files)
        self.artifacts = files.artifacts
        self.launcher = launcher
        self.max_attempts = max_attempts
        self.base_model_path = base_model_path
        self.data_roots = data_roots
        self.training_threads = training_threads
        self.has_gpu = has_gpu
        self.max_lora_rank = max_lora_rank
        self.on_models_published: list[Callable[[], None]] = []
        self._slots = TrainingSlots(capacity)
        self._tasks: dict[str, asyncio.Task] = {}
        self._cancel_requested: set[str] = set()
        self._pause_requested: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------------

    def submit(self, job_id: str, context: JobContext) -> None:
        """Runs the job; after the job's previous run, if one is still stopping (a pause followed by a resume)."""
        previous = self._tasks.get(job_id)
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, context, previous), name=f"job-{job_id}")

    def request_cancel(self, job_id: str) -> None:
        self._cancel_requested.add(job_id)

    def request_pause(self, job_id: str) -> None:
        self._pause_requested.add(job_id)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- one job -------------------------------------------------------------------------------------

    async def _run(self, job_id: str, context: JobContext, previous: asyncio.Task | None) -> None:
        structlog.contextvars.bind_contextvars(job_id=job_id)
        if previous is not None:
            await asyncio.wait([previous])
            self._pause_requested.discard(job_id)  # that run has stopped for it: this one must not
        try:
            spec = await self._validate(job_id, context)
            if spec is None:
                return
            async with self._slots.hold(spec.hyperparameters.n_workers):
                if self._cancelled(job_id):
                    return
                await self._train(job_id, context, spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a job running
            log.error("job_crashed", exc_info=exc)
            self.journal.failed(job_id, "internal_error", f"The job failed unexpectedly: {exc}")
        finally:
            if self._tasks.get(job_id) is asyncio.current_task():
                self._tasks.pop(job_id)
                self._cancel_requested.discard(job_id)
                self._pause_requested.discard(job_id)
                self.journal.forget(job_id)

    async def _validate(self, job_id: str, context: JobContext) -> TrainingSpec | None:
        job = self.journal.job(job_id)
        self.journal.event(job_id, "info", f"Validating training file: {job.training_file}")
        try:
            train, valid = await asyncio.to_thread(self._load, job, context.owner)
            check_method(train, context.method)
            check_method(valid, context.method, param="validation_file")
            resolved, warnings = resolve_hyperparameters(
                context.hyperparameters,
                n_examples=len(train),
                max_lora_rank=self.max_lora_rank,
                has_cuda=self.has_gpu,
            )
            if context.continue_from is not None:
                parent = await asyncio.to_thread(published_config, self.artifacts, context.continue_from)
                resolved = inherit_lora(resolved, parent)
        except PlatformError as exc:
            self.journal.failed(job_id, exc.code or "invalid_training_file", exc.message, exc.param)
            return None
        for warning in warnings:
            self.journal.event(job_id, "warn", warning)
        job = self.journal.job(job_id)
        job.hyperparameters = msgspec.convert(resolved.openai_view(), type(job.hyperparameters))
        if job.method is not None and job.method.settings is not None:
            job.method.settings.hyperparameters = resolved.method_view(context.method)
        job.status = "queued"
        validated = f"Files validated ({len(train)} examples), moving job to queued state"
        if self._cancelled(job_id) or not self.journal.change(job, expect=("validating_files",), message=validated):
            return None
        return TrainingSpec(
            base_model_path=self.base_model_path,
            output_dir=context.output_dir,
            train_examples=train,
            validation_examples=valid,
            hyperparameters=resolved,
            base_model_id=context.base_model or job.model,
            init_adapter=context.continue_from,
            method=context.method,
            seed=job.seed,
            threads=self.training_threads,
            metrics_every=1,
        )

    def _load(self, job: FineTuningJob, owner: str) -> tuple[list, list]:
        def load(reference: str, param: str) -> list:
            return load_examples(reference, owner=owner, files=self.files, roots=self.data_roots, param=param)

        train = load(job.training_file, "training_file")
        valid = load(job.validation_file, "validation_file") if job.validation_file else []
        return train, valid

    async def _train(self, job_id: str, context: JobContext, spec: TrainingSpec) -> None:
        saved = await asyncio.to_thread(latest_state, self.artifacts, job_id)
        job = self.journal.job(job_id)
        job.status = "running"
        if saved is None:
            if not self.journal.change(job, expect=("queued",), message="Fine-tuning job started"):
                return
        elif self.store.save_job(job, expect=("queued",)):
            self.journal.resumed(job_id, context.fine_tuned_model, saved)
        else:
            return
        spec = msgspec.structs.replace(spec, resume_from=saved)
        while True:
            try:
                result = await self._attempt(job_id, context, spec)
            except Exception as exc:
                if self._stopped(job_id) is not None or isinstance(exc, (TrainingCancelled, TrainingPaused)):
                    await self._finish_stopped(job_id)
                elif isinstance(exc, TrainerLost):
                    resumed = await self._after_lost_trainer(job_id, context, spec, exc)
                    if resumed is not None:
                        spec = resumed
                        continue
                elif isinstance(exc, PlatformError):
                    self.journal.failed(job_id, exc.code or "trainer_failed", f"Training failed: {exc.message}")
                else:
                    self.journal.failed(job_id, "trainer_failed", f"Training failed: {_short(exc)}")
                return
            await self._succeed(job_id, context, result)
            return

    async def _attempt(self, job_id: str, context: JobContext, spec: TrainingSpec) -> TrainingResult:
        """One run of the trainer, until it returns; asks it to stop once the job is cancelled or paused."""
        run = self.launcher.start(job_id, spec)
        started = time.time()
        result_task = asyncio.ensure_future(run.result())
        stop_reason: str | None = None
        stop_sent_at = 0.0
        try:
            while True:
                done, _ = await asyncio.wait([result_task], timeout=POLL_S)
                await self._record_progress(job_id, context, run, started)
                if done:
                    return result_task.result()
                stopped = self._stopped(job_id)
                if stopped is not None and stopped != stop_reason and stop_reason != "killed":
                    stop_reason, stop_sent_at = stopped, time.monotonic()
                    run.cancel() if stopped == "cancelled" else run.pause()
                grace = CANCEL_GRACE_S if stop_reason == "cancelled" else PAUSE_GRACE_S  # a pause saves the state first
                if stop_reason in ("cancelled", "paused") and time.monotonic() - stop_sent_at > grace:
                    log.warning("stop_grace_expired_killing_trainer", reason=stop_reason)
                    run.kill()
                    stop_reason = "killed"
        finally:
            result_task.cancel()
            run.kill()

    async def _after_lost_trainer(
        self, job_id: str, context: JobContext, spec: TrainingSpec, lost: TrainerLost
    ) -> TrainingSpec | None:
        """Counts the lost run; the spec to run again from the latest saved state, or None once out of tries."""
        stored = self.store.get_context(job_id)
        current = msgspec.json.decode(stored, type=JobContext) if stored else context
        lost_runs = current.lost_runs + 1
        self.store.save_context(job_id, msgspec.json.encode(msgspec.structs.replace(current, lost_runs=lost_runs)))
        if lost_runs >= self.max_attempts:
            self.journal.failed(
                job_id,
                "trainer_failed",
                f"Training failed: the trainer was lost {lost_runs} times (last: {lost.message}).",
            )
            return None
        saved = await asyncio.to_thread(latest_state, self.artifacts, job_id)
        where = f"resuming from step {saved.step}" if saved else "starting again from the beginning (no state saved yet)"
        self.journal.event(job_id, "warn", f"{lost.message}; {where}, try {lost_runs + 1} of {self.max_attempts}")
        if saved is not None:
            self.journal.resumed(job_id, context.fine_tuned_model, saved)
        return msgspec.structs.replace(spec, resume_from=saved)

    async def _record_progress(self, job_id: str, context: JobContext, run: TrainingRun, started: float) -> None:
        for report in await run.drain():
            if isinstance(report, MetricsReport):
                self.journal.metrics(job_id, report, started)
            elif isinstance(report, CheckpointReport):
                self.journal.checkpoint(job_id, context.fine_tuned_model, report)
            else:
                self.journal.event(job_id, report.level, report.text)

    async def _succeed(self, job_id: str, context: JobContext, result: TrainingResult) -> None:
        published = await asyncio.to_thread(
            self.journal.succeeded, job_id, owner=context.owner, fine_tuned_model=context.fine_tuned_model, result=result
        )
        if not published:
            self.journal.cancelled(job_id)
            return
        for listener in self.on_models_published:
            listener()
        if context.copy_to:
            await asyncio.to_thread(shutil.copytree, result.adapter_path, context.copy_to, dirs_exist_ok=True)

    # --- state changes -------------------------------------------------------------------------------

    def _cancelled(self, job_id: str) -> bool:
        return self._stopped(job_id) == "cancelled"

    def _stopped(self, job_id: str) -> Literal["cancelled", "paused"] | None:
        """Whether the API stopped the job, which then must not train (on)."""
        status = self.journal.job(job_id).status
        if job_id in self._cancel_requested or status == "cancelled":
            return "cancelled"
        if job_id in self._pause_requested or status == "paused":
            return "paused"
        return None

    async def _finish_stopped(self, job_id: str) -> None:
        if self._stopped(job_id) == "paused":
            saved = await asyncio.to_thread(latest_state, self.artifacts, job_id)
            where = f"at step {saved.step}" if saved else "before its first saved state"
            self.journal.event(job_id, "info", f"Training paused {where}; resume the job to continue from there")
        else:
            self.journal.cancelled(job_id)


def random_seed() -> int:
    return random.randrange(2**31)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__
