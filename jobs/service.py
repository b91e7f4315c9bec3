"""The fine-tuning API's domain logic: create, list, retrieve and cancel jobs, their events and
checkpoints; restart recovery; and the fine-tuned models the engines serve."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Literal

import msgspec
import structlog

from engines.adapters import Adapter
from engines.core.errors import InvalidRequestError, NotFoundError, PlatformError
from jobs.datasets import confined_path, is_file_id, looks_local
from jobs.files import FileService, new_id
from jobs.hyperparameters import PARENT_LORA_SETTINGS, validate_hyperparameters
from jobs.records import (
    ACTIVE_STATUSES,
    UNFINISHED_STATUSES,
    FineTuningJob,
    Hyperparameters,
    JobCreateRequest,
    Method,
    MethodSettings,
)
from jobs.records import (
    JobError as JobErrorRecord,
)
from jobs.scheduler import JobContext, Scheduler, random_seed
from jobs.store import Page, Store

log = structlog.get_logger("jobs.service")

_SUFFIX = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
MAX_METADATA_PAIRS = 16


class JobQueries:
    """Reads of jobs, their events and checkpoints: any process with the store answers them."""

    def __init__(self, store: Store, *, base_model_id: str, data_roots: list[Path]) -> None:
        self.store = store
        self.base_model_id = base_model_id
        self.data_roots = data_roots

    def get(self, job_id: str, *, owner: str) -> FineTuningJob:
        job = self.store.get_job(job_id, owner=owner)
        if job is None:
            raise NotFoundError(f"Could not find fine-tune: {job_id}", param="fine_tuning_job_id", code="not_found")
        return job

    def list(self, *, owner: str, after: str | None, limit: int, metadata: dict[str, str]) -> Page:
        return self.store.list_jobs(owner=owner, after=after, limit=limit, metadata=metadata)

    def events(self, job_id: str, *, owner: str, after: str | None, limit: int) -> Page:
        self.get(job_id, owner=owner)
        return self.store.list_events(job_id, after=after, limit=limit)

    def checkpoints(self, job_id: str, *, owner: str, after: str | None, limit: int) -> Page:
        self.get(job_id, owner=owner)
        return self.store.list_checkpoints(job_id, after=after, limit=limit)


class FineTuningService(JobQueries):
    """The owner of job state: creates, cancels and recovers jobs, and runs them through its scheduler. A
    platform has exactly one (the control plane); two would run each queued job twice."""

    def __init__(
        self,
        store: Store,
        files: FileService,
        scheduler: Scheduler,
        *,
        base_model_id: str,
        jobs_dir: Path,
        data_roots: list[Path],
        max_lora_rank: int,
    ) -> None:
        super().__init__(store, base_model_id=base_model_id, data_roots=data_roots)
        self.files = files
        self.scheduler = scheduler
        self.journal = scheduler.journal
        self.jobs_dir = jobs_dir
        self.max_lora_rank = max_lora_rank

    # --- API -----------------------------------------------------------------------------------------

    async def create(self, request: JobCreateRequest, *, owner: str, copy_to: str | None = None) -> FineTuningJob:
        """Validates and stores the job (in a worker thread: it reads files and writes the store), then queues it."""
        job, context = await asyncio.to_thread(self._register, request, owner, copy_to)
        self.scheduler.submit(job.id, context)
        return job

    def _register(self, request: JobCreateRequest, owner: str, copy_to: str | None) -> tuple[FineTuningJob, JobContext]:
        parent = None if request.model == self.base_model_id else self._parent(request.model, owner)
        if request.integrations:
            # Accepted and ignored, a job would look reported to Weights & Biases while nothing is sent there.
            raise InvalidRequestError(
                "Integrations are not supported by this platform: nothing would be reported to Weights & Biases. "
                "Remove 'integrations'; the job's metrics events, checkpoints and result file carry the same metrics.",
                param="integrations",
                code="invalid_value",
            )
        method, given = self._method(request)
        if method == "dpo" and request.validation_file is not None:
            raise InvalidRequestError(
                "'validation_file' is not supported with DPO yet; validate a DPO model by its preference margins.",
                param="validation_file",
                code="invalid_value",
            )
        hyperparameters = validate_hyperparameters(given, self.max_lora_rank)
        if parent is not None and (fixed := sorted(set(hyperparameters) & set(PARENT_LORA_SETTINGS))):
            raise InvalidRequestError(
                f"A job that continues training '{request.model}' keeps its LoRA settings; remove {', '.join(fixed)}.",
                param=fixed[0],
                code="invalid_value",
            )
        for param, reference in (("training_file", request.training_file), ("validation_file", request.validation_file)):
            if reference is not None:
                self._check_data_reference(reference, param=param, owner=owner)
        if request.suffix is not None and not _SUFFIX.match(request.suffix):
            raise InvalidRequestError(
                "Invalid 'suffix': up to 64 letters, digits, '.', '_' or '-'.", param="suffix", code="invalid_value"
            )
        metadata = request.metadata or {}
        if len(metadata) > MAX_METADATA_PAIRS or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
            raise InvalidRequestError(
                "Invalid 'metadata': at most 16 pairs, keys up to 64 and values up to 512 characters.",
                param="metadata",
                code="invalid_value",
            )
        job_id = new_id("ftjob")
        job = FineTuningJob(
            id=job_id,
            created_at=int(time.time()),
            model=request.model,
            training_file=request.training_file,
            validation_file=request.validation_file,
            hyperparameters=Hyperparameters(**{k: v for k, v in hyperparameters.items() if k in _OPENAI_KEYS}),
            seed=request.seed if request.seed is not None else random_seed(),
            status="validating_files",
            organization_id=owner,
            metadata=request.metadata,
            method=Method(type=method, **{method: MethodSettings(hyperparameters=hyperparameters)}),
            user_provided_suffix=request.suffix,
            integrations=[],
        )
        self.store.add_job(job, owner=owner)
        context = JobContext(
            owner=owner,
            fine_tuned_model=f"ft:{self.base_model_id}:{owner}:{request.suffix or ''}:{job_id}",
            output_dir=str(self.jobs_dir / job_id),
            hyperparameters=hyperparameters,
            copy_to=copy_to,
            base_model=self.base_model_id,
            continue_from=parent.digest if parent is not None else None,
            method=method,
        )
        self.store.save_context(job_id, msgspec.json.encode(context))
        self.journal.event(job_id, "info", f"Created fine-tuning job: {job_id}")
        return job, context

    async def cancel(self, job_id: str, *, owner: str) -> FineTuningJob:
        job = await asyncio.to_thread(self._cancel, job_id, owner)
        self.scheduler.request_cancel(job_id)
        return job

    def _cancel(self, job_id: str, owner: str) -> FineTuningJob:
        job = self.get(job_id, owner=owner)
        if job.status not in UNFINISHED_STATUSES:
            raise InvalidRequestError(
                f"Job {job_id} has already {job.status} and cannot be cancelled.",
                param="fine_tuning_job_id",
                code="invalid_state",
            )
        was_paused = job.status == "paused"
        job.status = "cancelled"
        job.finished_at = int(time.time())
        job.estimated_finish = None
        if not self.journal.change(job, expect=UNFINISHED_STATUSES, message="Job cancellation requested"):
            return self._cancel(job_id, owner)  # it finished meanwhile: answered from its final status
        if was_paused:  # no run is left to clean up after it
            self.journal.discard_states(job_id)
        return job

    async def pause(self, job_id: str, *, owner: str) -> FineTuningJob:
        """Pauses the job: a run in progress saves its state at its next step and stops, freeing its resources."""
        job = await asyncio.to_thread(self._pause, job_id, owner)
        self.scheduler.request_pause(job_id)
        return job

    def _pause(self, job_id: str, owner: str) -> FineTuningJob:
        job = self.get(job_id, owner=owner)
        if job.status not in ACTIVE_STATUSES:
            raise InvalidRequestError(
                f"Job {job_id} is {job.status}; only a job that is validating its files, queued or running can be paused.",
                param="fine_tuning_job_id",
                code="invalid_state",
            )
        job.status = "paused"
        job.estimated_finish = None
        if not self.journal.change(job, expect=ACTIVE_STATUSES, message="Job pause requested"):
            return self._pause(job_id, owner)  # it moved on meanwhile: answered from its new status
        return job

    async def resume(self, job_id: str, *, owner: str) -> FineTuningJob:
        """Queues a paused job again; its run continues from the state it saved when it paused."""
        job, context = await asyncio.to_thread(self._resume, job_id, owner)
        self.scheduler.submit(job_id, context)
        return job

    def _resume(self, job_id: str, owner: str) -> tuple[FineTuningJob, JobContext]:
        job = self.get(job_id, owner=owner)
        stored = self.store.get_context(job_id)
        if job.status != "paused" or stored is None:
            raise InvalidRequestError(
                f"Job {job_id} is {job.status}; only a paused job can be resumed.",
                param="fine_tuning_job_id",
                code="invalid_state",
            )
        job.status = "validating_files"
        resumed = "Job resumed; its files are validated again before it is queued"
        if not self.journal.change(job, expect=("paused",), message=resumed):
            return self._resume(job_id, owner)
        return job, msgspec.json.decode(stored, type=JobContext)

    # --- recovery ------------------------------------------------------------------------------------

    async def close(self) -> None:
        await self.scheduler.close()

    def recover(self) -> None:
        """After a restart (of the platform or of the control plane alone): every job it was working on is taken up
        again, a job that was training from its latest saved state. A restart counts as a lost run of the jobs that
        were training, so a job that brings the platform down each time it trains fails after a few tries."""
        for job in self.store.active_jobs():
            stored = self.store.get_context(job.id)
            context = msgspec.json.decode(stored, type=JobContext) if stored else None
            if context is None:  # a job of a release that kept no context cannot run again
                self._fail_restarted(job, "The platform stopped while this job was training; create it again.")
                continue
            if job.status == "running":
                context = msgspec.structs.replace(context, lost_runs=context.lost_runs + 1)
                self.store.save_context(job.id, msgspec.json.encode(context))
                if context.lost_runs >= self.scheduler.max_attempts:
                    self._fail_restarted(job, f"The platform stopped {context.lost_runs} times while this job was training.")
                    continue
                message = "The platform restarted while this job was training; it resumes from its last saved state"
            else:
                message = "The platform restarted; the job is validated and queued again"
            job.status = "validating_files"
            self.journal.change(job, expect=ACTIVE_STATUSES, message=message)
            self.scheduler.submit(job.id, context)

    def _fail_restarted(self, job: FineTuningJob, message: str) -> None:
        job.status = "failed"
        job.finished_at = int(time.time())
        job.error = JobErrorRecord(code="platform_restarted", message=message)
        self.journal.change(job, expect=ACTIVE_STATUSES, message=message, level="error")
        self.journal.discard_states(job.id)
        log.warning("job_failed_by_restart", job_id=job.id)

    # --- helpers -------------------------------------------------------------------------------------

    def _parent(self, model: str, owner: str) -> Adapter:
        """The caller's fine-tuned model or checkpoint a job continues training; 404 for anything else."""
        for adapter in self.store.list_models():
            if adapter.name == model and adapter.owner == owner and adapter.digest is not None:
                return adapter
        raise NotFoundError(
            f"The model '{model}' does not exist or cannot be fine-tuned; fine-tunable: {self.base_model_id} and your "
            "fine-tuned models and their checkpoints.",
            param="model",
            code="model_not_found",
        )

    def _method(self, request: JobCreateRequest) -> tuple[Literal["supervised", "dpo"], dict]:
        """The job's method and its hyperparameters as given (at the top level, deprecated, or in the method)."""
        method = request.method or {}
        kind = method.get("type", "supervised")
        if kind == "reinforcement":
            raise InvalidRequestError(
                "Fine-tuning method 'reinforcement' is not supported; use 'supervised' or 'dpo'.",
                param="method.type",
                code="invalid_value",
            )
        if kind not in ("supervised", "dpo"):
            raise InvalidRequestError(f"Unknown fine-tuning method '{kind}'.", param="method.type", code="invalid_value")
        nested = (method.get(kind) or {}).get("hyperparameters")
        if nested is not None and request.hyperparameters is not None and nested != request.hyperparameters:
            raise InvalidRequestError(
                f"Give hyperparameters either at the top level (deprecated) or in method.{kind}, not both.",
                param="hyperparameters",
                code="invalid_value",
            )
        raw = nested if nested is not None else request.hyperparameters or {}
        if not isinstance(raw, dict):
            raise InvalidRequestError("'hyperparameters' must be an object.", param="hyperparameters", code="invalid_type")
        if kind == "supervised" and "beta" in raw:
            raise InvalidRequestError("'beta' is a DPO hyperparameter.", param="beta", code="invalid_value")
        return kind, raw

    def _check_data_reference(self, reference: str, *, param: str, owner: str) -> None:
        if is_file_id(reference):
            try:
                file = self.files.get(reference, owner=owner)
            except PlatformError:
                raise InvalidRequestError(
                    f"Invalid file ID: '{reference}' does not exist.", param=param, code="file_not_found"
                ) from None
            if file.status == "error":
                raise InvalidRequestError(
                    f"The file '{reference}' cannot be used for fine-tuning: {file.status_details}",
                    param=param,
                    code="invalid_file_format",
                )
        elif looks_local(reference):
            confined_path(reference, self.data_roots, param=param)


_OPENAI_KEYS = ("n_epochs", "batch_size", "learning_rate_multiplier")
