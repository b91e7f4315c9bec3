"""The control plane: the one owner of job state per platform, as a Serve deployment with a single replica.
It holds the scheduler, starts and watches trainers, recovers jobs at start-up and publishes models; the
gateway replicas send it the writes (create, cancel) and answer reads from the store themselves. Killing a
gateway replica never touches a job; if the control plane dies, Serve replaces it and the new replica
recovers from the store."""

from __future__ import annotations

import structlog

from engines.core.logs import configure_logging
from engines.core.settings import Settings
from engines.resources import ResourcePlan
from jobs.assembly import BaseModel, build_fine_tuning
from jobs.records import FineTuningJob, JobCreateRequest

log = structlog.get_logger("jobs.control_plane")


class ControlPlane:
    # Serve awaits an async constructor, so recovery starts its jobs on this replica's own event loop.
    async def __init__(self, settings: Settings, plan: ResourcePlan, base: BaseModel) -> None:  # type: ignore[misc]
        configure_logging(settings.log_level)
        self.service = build_fine_tuning(settings, plan, base)
        self.service.recover()
        log.info("control_plane_ready")

    async def create_job(self, request: JobCreateRequest, owner: str, copy_to: str | None) -> FineTuningJob:
        return await self.service.create(request, owner=owner, copy_to=copy_to)

    async def cancel_job(self, job_id: str, owner: str) -> FineTuningJob:
        return await self.service.cancel(job_id, owner=owner)

    async def pause_job(self, job_id: str, owner: str) -> FineTuningJob:
        return await self.service.pause(job_id, owner=owner)

    async def resume_job(self, job_id: str, owner: str) -> FineTuningJob:
        return await self.service.resume(job_id, owner=owner)

    async def check_health(self) -> None:
        """Called by Serve; a control plane that answers is healthy."""

    async def __del__(self) -> None:
        await self.service.close()
