"""Runs fine-tuning jobs: validates their files, queues them until the resource plan has room, trains each
through the launcher (a Ray actor placed with training's share of the cluster), and records progress,
checkpoints and results. Every status it writes is conditional on the status it read, so a cancel answered
by the API is never overturned."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from engines.adapters import Adapter
from engines.core.errors import PlatformError
from jobs.datasets import load_examples
from jobs.errors import TrainingCancelled
from jobs.files import FileService, new_id
from jobs.hyperparameters import resolve_hyperparameters
from jobs.progress import CheckpointReport, MetricsReport, TrainerLauncher, TrainingRun
from jobs.records import ACTIVE_STATUSES, CheckpointMetrics, EventKind, EventLevel, FineTuningJob, JobCheckpoint, JobEvent
from jobs.records import JobError as JobErrorRecord
from jobs.results import metrics_csv
from jobs.store import Store
from jobs.trainer import TrainingResult, TrainingSpec

log = structlog.get_logger("jobs.scheduler")

CANCEL_GRACE_S = 15.0
POLL_S = 1.0


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    owner: str
    fine_tuned_model: str
    output_dir: str
    hyperparameters: dict[str, Any]
    copy_to: str | None = None


class Scheduler:
    def __init__(
        self,
        store: Store,
        files: FileService,
        launcher: TrainerLauncher,
        *,
        base_model_path: str,
        data_roots: list[Path],
        parallel_jobs: int,
        training_threads: int,
        has_gpu: bool,
        max_lora_rank: int,
    ) -> None:
        self.store = store
        self.files = files
        self.launcher = launcher
        self.base_model_path = base_model_path
        self.data_roots = data_roots
        self.training_threads = training_threads
        self.has_gpu = has_gpu
        self.max_lora_rank = max_lora_rank
        self.on_models_published: list[Callable[[], None]] = []
        self._slots = asyncio.Semaphore(max(1, parallel_jobs))
        self._tasks: dict[str, asyncio.Task] = {}
        self._cancel_requested: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------------

    def submit(self, job_id: str, context: JobContext) -> None:
        self._tasks[job_id] = asyncio.create_task(self._run(job_id, context), name=f"job-{job_id}")

    def request_cancel(self, job_id: str) -> None:
        self._cancel_requested.add(job_id)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- one job -------------------------------------------------------------------------------------

    async def _run(self, job_id: str, context: JobContext) -> None:
        structlog.contextvars.bind_contextvars(job_id=job_id)
        try:
            spec = await self._validate(job_id, context)
            if spec is None:
                return
            async with self._slots:
                if self._cancelled(job_id):
                    return
                await self._train(job_id, context, spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a job running
            log.error("job_crashed", exc_info=exc)
            self._fail(job_id, "internal_error", f"The job failed unexpectedly: {exc}")
        finally:
            self._tasks.pop(job_id, None)
            self._cancel_requested.discard(job_id)

    async def _validate(self, job_id: str, context: JobContext) -> TrainingSpec | None:
        job = self._job(job_id)
        self.event(job_id, "info", f"Validating training file: {job.training_file}")
        try:
            train, valid = await asyncio.to_thread(self._load, job, context.owner)
            resolved, warnings = resolve_hyperparameters(
                context.hyperparameters,
                n_examples=len(train),
                max_lora_rank=self.max_lora_rank,
                has_cuda=self.has_gpu,
            )
        except PlatformError as exc:
            self._fail(job_id, exc.code or "invalid_training_file", exc.message, exc.param)
            return None
        for warning in warnings:
            self.event(job_id, "warn", warning)
        job = self._job(job_id)
        job.hyperparameters = msgspec.convert(resolved.openai_view(), type(job.hyperparameters))
        if job.method is not None and job.method.supervised is not None:
            job.method.supervised.hyperparameters = resolved.openai_view()
        job.status = "queued"
        if self._cancelled(job_id) or not self.store.save_job(job, expect=("validating_files",)):
            return None
        self.event(job_id, "info", f"Files validated ({len(train)} examples), moving job to queued state")
        return TrainingSpec(
            base_model_path=self.base_model_path,
            output_dir=context.output_dir,
            train_examples=train,
            validation_examples=valid,
            hyperparameters=resolved,
            base_model_id=job.model,
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
        job = self._job(job_id)
        job.status = "running"
        if not self.store.save_job(job, expect=("queued",)):
            return
        self.event(job_id, "info", "Fine-tuning job started")
        try:
            run = self.launcher.start(job_id, spec)
        except PlatformError as exc:
            self._fail(job_id, exc.code or "trainer_failed", exc.message)
            return
        started = time.time()
        result_task = asyncio.ensure_future(run.result())
        cancel_sent_at: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait([result_task], timeout=POLL_S)
                await self._record_progress(job_id, context, run, started)
                if done:
                    break
                if self._cancelled(job_id) and cancel_sent_at is None:
                    cancel_sent_at = time.monotonic()
                    run.cancel()
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    log.warning("cancel_grace_expired_killing_trainer")
                    run.kill()
                    cancel_sent_at = float("inf")
            try:
                result = result_task.result()
            except Exception as exc:
                if isinstance(exc, TrainingCancelled) or self._cancelled(job_id):
                    self._finish_cancelled(job_id)
                else:
                    self._fail(job_id, "trainer_failed", f"Training failed: {_short(exc)}")
                return
            await self._succeed(job_id, context, result)
        finally:
            result_task.cancel()
            run.kill()

    async def _record_progress(self, job_id: str, context: JobContext, run: TrainingRun, started: float) -> None:
        for report in await run.drain():
            if isinstance(report, MetricsReport):
                self._metrics_event(job_id, report, started)
            elif isinstance(report, CheckpointReport):
                self._checkpoint(job_id, context, report)
            else:
                self.event(job_id, report.level, report.text)

    def _metrics_event(self, job_id: str, report: MetricsReport, started: float) -> None:
        row, total = report.row, report.total_steps
        message = f"Step {row.step}/{total}: training loss={row.train_loss:.4f}"
        if row.valid_loss is not None:
            message += f", validation loss={row.valid_loss:.4f}"
        self.event(job_id, "info", message, data=row.event_data(total), kind="metrics")
        if 0 < row.step < total:
            job = self._job(job_id)
            job.estimated_finish = int(started + (time.time() - started) * total / row.step)
            self.store.save_job(job, expect=("running",))

    def _checkpoint(self, job_id: str, context: JobContext, report: CheckpointReport) -> None:
        metrics = report.metrics.checkpoint_metrics() if report.metrics else CheckpointMetrics(step=report.step)
        checkpoint = JobCheckpoint(
            id=new_id("ftckpt"),
            created_at=int(time.time()),
            fine_tuned_model_checkpoint=f"{context.fine_tuned_model}:ckpt-step-{report.step}",
            fine_tuning_job_id=job_id,
            metrics=metrics,
            step_number=report.step,
        )
        self.store.add_checkpoint(checkpoint, path=report.path, digest=report.digest)

    async def _succeed(self, job_id: str, context: JobContext, result: TrainingResult) -> None:
        job = self._job(job_id)
        results = self.files.store_result(
            owner=context.owner, filename="step_metrics.csv", content=metrics_csv(result.step_metrics)
        )
        adapter = Adapter(
            name=context.fine_tuned_model,
            path=result.adapter_path,
            parent=job.model,
            owner=context.owner,
            created=int(time.time()),
            job_id=job_id,
            digest=result.adapter_digest,
        )
        checkpoints = [
            Adapter(
                name=ckpt.fine_tuned_model_checkpoint,
                path=path,
                parent=job.model,
                owner=context.owner,
                created=ckpt.created_at,
                job_id=job_id,
                digest=digest,
            )
            for ckpt, path, digest in self.store.checkpoint_adapters(job_id)
        ]
        job.fine_tuned_model = context.fine_tuned_model
        job.trained_tokens = result.trained_tokens
        job.result_files = [results.id]
        job.status = "succeeded"
        job.finished_at = int(time.time())
        job.estimated_finish = None
        if not self.store.publish_job(job, [adapter, *checkpoints]):
            # Cancelled after the trainer's last check: the cancel was answered first, so it wins.
            self.files.delete(results.id, owner=context.owner)
            self._finish_cancelled(job_id)
            return
        for listener in self.on_models_published:
            listener()
        if context.copy_to:
            await asyncio.to_thread(shutil.copytree, result.adapter_path, context.copy_to, dirs_exist_ok=True)
        self.event(
            job_id,
            "info",
            f"Trained {result.trained_tokens} tokens in {result.steps} steps at {result.tokens_per_second:.1f} tokens/s",
            data={"trained_tokens": result.trained_tokens, "tokens_per_second": round(result.tokens_per_second, 2)},
        )
        self.event(job_id, "info", f"New fine-tuned model created: {context.fine_tuned_model}")
        self.event(job_id, "info", "The job has successfully completed")
        log.info("job_succeeded", model=context.fine_tuned_model, tokens_per_second=round(result.tokens_per_second, 1))

    # --- state changes -------------------------------------------------------------------------------

    def _cancelled(self, job_id: str) -> bool:
        return job_id in self._cancel_requested or self._job(job_id).status == "cancelled"

    def _finish_cancelled(self, job_id: str) -> None:
        job = self._job(job_id)
        if job.status != "cancelled":
            job.status = "cancelled"
            job.finished_at = int(time.time())
            job.estimated_finish = None
            self.store.save_job(job, expect=ACTIVE_STATUSES)
        self.event(job_id, "info", "Training stopped; the job was cancelled and no model was published")

    def _fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        job = self._job(job_id)
        if job.status in ("succeeded", "cancelled"):
            return
        job.status = "failed"
        job.error = JobErrorRecord(code=code, message=message, param=param)
        job.finished_at = int(time.time())
        job.estimated_finish = None
        if not self.store.save_job(job, expect=ACTIVE_STATUSES):
            return
        self.event(job_id, "error", message)
        log.warning("job_failed", code=code, message=message)

    def event(
        self,
        job_id: str,
        level: EventLevel,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        kind: EventKind = "message",
    ) -> None:
        event = JobEvent(
            id=new_id("ftevent"), created_at=int(time.time()), level=level, message=message, data=data, type=kind
        )
        self.store.add_event(job_id, event)
        log.info("job_event", job_id=job_id, level=level, message=message)

    def _job(self, job_id: str) -> FineTuningJob:
        job = self.store.get_job(job_id)
        assert job is not None, job_id
        return job


def random_seed() -> int:
    return random.randrange(2**31)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__
