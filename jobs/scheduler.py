"""Runs fine-tuning jobs: validates their files, queues them until the resource plan has room, trains each
in a Ray actor placed with training's share of the cluster, and records progress, checkpoints and results."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec
import ray
import structlog

from engines.core.errors import PlatformError
from jobs.datasets import load_examples
from jobs.errors import TrainingCancelled
from jobs.files import FileService, new_id
from jobs.hyperparameters import resolve_hyperparameters
from jobs.records import CheckpointMetrics, FineTuningJob, JobCheckpoint, JobEvent, ServedModel
from jobs.records import JobError as JobErrorRecord
from jobs.results import metrics_csv
from jobs.runner import TrainerActor
from jobs.store import Store
from jobs.trainer import TrainingResult, TrainingSpec

log = structlog.get_logger("jobs.scheduler")

CANCEL_GRACE_S = 15.0
POLL_S = 1.0


class TrainingPlacement(msgspec.Struct, frozen=True, kw_only=True):
    """What one training actor asks of Ray, and how many may run at once."""

    cpus: float
    gpus: float
    parallel_jobs: int
    threads: int


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
        *,
        base_model_path: str,
        data_roots: list[Path],
        placement: TrainingPlacement,
        max_lora_rank: int,
        log_level: str,
    ) -> None:
        self.store = store
        self.files = files
        self.base_model_path = base_model_path
        self.data_roots = data_roots
        self.placement = placement
        self.max_lora_rank = max_lora_rank
        self.log_level = log_level
        self._slots = asyncio.Semaphore(max(1, placement.parallel_jobs))
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
                has_cuda=self.placement.gpus > 0,
            )
        except PlatformError as exc:
            self._fail(job_id, exc.code or "invalid_training_file", exc.message, exc.param)
            return None
        for warning in warnings:
            self.event(job_id, "warn", warning)
        if self._cancelled(job_id):
            return None
        job = self._job(job_id)
        job.hyperparameters = msgspec.convert(resolved.openai_view(), type(job.hyperparameters))
        if job.method is not None and job.method.supervised is not None:
            job.method.supervised.hyperparameters = resolved.openai_view()
        job.status = "queued"
        self.store.save_job(job)
        self.event(job_id, "info", f"Files validated ({len(train)} examples), moving job to queued state")
        return TrainingSpec(
            base_model_path=self.base_model_path,
            output_dir=context.output_dir,
            train_examples=train,
            validation_examples=valid,
            hyperparameters=resolved,
            base_model_id=job.model,
            seed=job.seed,
            threads=self.placement.threads,
            metrics_every=1,
        )

    def _load(self, job: FineTuningJob, owner: str) -> tuple[list, list]:
        def load(reference: str, param: str) -> list:
            return load_examples(reference, owner=owner, files=self.files, roots=self.data_roots, param=param)

        train = load(job.training_file, "training_file")
        valid = load(job.validation_file, "validation_file") if job.validation_file else []
        return train, valid

    async def _train(self, job_id: str, context: JobContext, spec: TrainingSpec) -> None:
        if not ray.is_initialized():  # never start a stray local cluster from a library call
            self._fail(job_id, "no_cluster", "Training needs the platform's Ray cluster, which is not running.")
            return
        job = self._job(job_id)
        job.status = "running"
        self.store.save_job(job)
        self.event(job_id, "info", "Fine-tuning job started")
        actor = TrainerActor.options(
            num_cpus=self.placement.cpus,
            num_gpus=self.placement.gpus,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(self.placement.threads), "HF_HUB_OFFLINE": "1"}},
        ).remote(job_id, self.log_level)
        started = time.time()
        result_ref = actor.run.remote(spec)
        result_future = asyncio.wrap_future(result_ref.future())
        cancel_sent_at: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait([result_future], timeout=POLL_S)
                await self._record_progress(job_id, context, actor, started)
                if done:
                    break
                if self._cancelled(job_id) and cancel_sent_at is None:
                    cancel_sent_at = time.monotonic()
                    actor.cancel.remote()
                if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    log.warning("cancel_grace_expired_killing_actor")
                    ray.kill(actor)
                    cancel_sent_at = float("inf")
            try:
                result: TrainingResult = result_future.result()
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc
                if isinstance(cause, TrainingCancelled) or self._cancelled(job_id):
                    self._finish_cancelled(job_id)
                else:
                    self._fail(job_id, "trainer_failed", f"Training failed: {_short(cause)}")
                return
            await self._succeed(job_id, context, result)
        finally:
            ray.kill(actor)

    async def _record_progress(self, job_id: str, context: JobContext, actor: Any, started: float) -> None:
        try:
            progress = await asyncio.wait_for(asyncio.wrap_future(actor.drain.remote().future()), timeout=10)
        except Exception:
            return  # a dead actor is reported through the run's own result
        for kind, data in progress:
            if kind == "metrics":
                self._metrics_event(job_id, data, started)
            elif kind == "checkpoint":
                self._checkpoint(job_id, context, data)
            else:
                self.event(job_id, "warn" if data["level"] in ("warn", "warning") else data["level"], data["text"])

    def _metrics_event(self, job_id: str, data: dict[str, Any], started: float) -> None:
        step, total = data["step"], data["total_steps"]
        message = f"Step {step}/{total}: training loss={data['train_loss']:.4f}"
        if data.get("valid_loss") is not None:
            message += f", validation loss={data['valid_loss']:.4f}"
        self.event(job_id, "info", message, data=data, kind="metrics")
        if 0 < step < total:
            job = self._job(job_id)
            job.estimated_finish = int(started + (time.time() - started) * total / step)
            self.store.save_job(job)

    def _checkpoint(self, job_id: str, context: JobContext, data: dict[str, Any]) -> None:
        step = data["step"]
        metrics = {k: v for k, v in data["metrics"].items() if k in CheckpointMetrics.__struct_fields__}
        checkpoint = JobCheckpoint(
            id=new_id("ftckpt"),
            created_at=int(time.time()),
            fine_tuned_model_checkpoint=f"{context.fine_tuned_model}:ckpt-step-{step}",
            fine_tuning_job_id=job_id,
            metrics=msgspec.convert({"step": step, **metrics}, CheckpointMetrics),
            step_number=step,
        )
        self.store.add_checkpoint(checkpoint, path=Path(data["path"]))

    async def _succeed(self, job_id: str, context: JobContext, result: TrainingResult) -> None:
        job = self._job(job_id)
        results = self.files.store_result(
            owner=context.owner, filename="step_metrics.csv", content=metrics_csv(result.step_metrics)
        )
        created = int(time.time())
        models = [
            ServedModel(
                name=context.fine_tuned_model,
                path=result.adapter_path,
                parent=job.model,
                owner=context.owner,
                created=created,
                job_id=job_id,
            )
        ]
        models += [
            ServedModel(
                name=ckpt.fine_tuned_model_checkpoint,
                path=str(path),
                parent=job.model,
                owner=context.owner,
                created=ckpt.created_at,
                job_id=job_id,
            )
            for ckpt, path in self.store.checkpoint_paths(job_id)
        ]
        for model in models:
            self.store.add_model(model)
        if context.copy_to:
            await asyncio.to_thread(shutil.copytree, result.adapter_path, context.copy_to, dirs_exist_ok=True)
        job.fine_tuned_model = context.fine_tuned_model
        job.trained_tokens = result.trained_tokens
        job.result_files = [results.id]
        job.status = "succeeded"
        job.finished_at = int(time.time())
        job.estimated_finish = None
        self.store.save_job(job)
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
            self.store.save_job(job)
        self.event(job_id, "info", "Training stopped; the job was cancelled and no model was published")

    def _fail(self, job_id: str, code: str, message: str, param: str | None = None) -> None:
        job = self._job(job_id)
        if job.status in ("succeeded", "cancelled"):
            return
        job.status = "failed"
        job.error = JobErrorRecord(code=code, message=message, param=param)
        job.finished_at = int(time.time())
        job.estimated_finish = None
        self.store.save_job(job)
        self.event(job_id, "error", message)
        log.warning("job_failed", code=code, message=message)

    def event(
        self, job_id: str, level: str, message: str, *, data: dict[str, Any] | None = None, kind: str = "message"
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
