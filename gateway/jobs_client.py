"""How the gateway reaches fine-tuning: writes go to the one owner of job state, reads to the store.

In the platform that owner is the control plane deployment (`ControlPlaneJobs`); in a single process (the
fast tests) it is a local `FineTuningService`, which offers the same calls."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from engines.core.errors import PlatformError, ServiceUnavailableError
from jobs.records import FineTuningJob, JobCreateRequest
from jobs.service import JobQueries
from jobs.store import Page, Store


class JobsAPI(Protocol):
    base_model_id: str
    data_roots: list[Path]

    async def create(self, request: JobCreateRequest, *, owner: str, copy_to: str | None = None) -> FineTuningJob: ...

    async def cancel(self, job_id: str, *, owner: str) -> FineTuningJob: ...

    async def pause(self, job_id: str, *, owner: str) -> FineTuningJob: ...

    async def resume(self, job_id: str, *, owner: str) -> FineTuningJob: ...

    def get(self, job_id: str, *, owner: str) -> FineTuningJob: ...

    def list(self, *, owner: str, after: str | None, limit: int, metadata: dict[str, str]) -> Page: ...

    def events(self, job_id: str, *, owner: str, after: str | None, limit: int) -> Page: ...

    def checkpoints(self, job_id: str, *, owner: str, after: str | None, limit: int) -> Page: ...


class ControlPlaneJobs(JobQueries):
    def __init__(self, handle: DeploymentHandle, store: Store, *, base_model_id: str, data_roots: list[Path]) -> None:
        super().__init__(store, base_model_id=base_model_id, data_roots=data_roots)
        self._handle = handle

    async def create(self, request: JobCreateRequest, *, owner: str, copy_to: str | None = None) -> FineTuningJob:
        return await self._call(self._handle.create_job.remote(request, owner, copy_to))

    async def cancel(self, job_id: str, *, owner: str) -> FineTuningJob:
        return await self._call(self._handle.cancel_job.remote(job_id, owner))

    async def pause(self, job_id: str, *, owner: str) -> FineTuningJob:
        return await self._call(self._handle.pause_job.remote(job_id, owner))

    async def resume(self, job_id: str, *, owner: str) -> FineTuningJob:
        return await self._call(self._handle.resume_job.remote(job_id, owner))

    async def _call(self, response: object) -> FineTuningJob:
        try:
            return await response  # type: ignore[misc]
        except RayTaskError as exc:
            if isinstance(exc.cause, PlatformError):
                raise exc.cause from None
            raise
        except (RayActorError, ActorUnavailableError, DeploymentUnavailableError) as exc:
            # The control plane is being replaced: the write can be retried shortly.
            raise ServiceUnavailableError(
                "The fine-tuning control plane is restarting; retry shortly.", code="control_plane_unavailable"
            ) from exc
