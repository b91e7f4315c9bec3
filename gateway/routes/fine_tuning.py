from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from litestar import Request, get, post
from litestar.openapi.spec import Operation, Schema
from litestar.openapi.spec import Parameter as ParameterSpec
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import Parameter

from gateway.protocol.errors import error_responses
from gateway.protocol.fine_tuning import CursorPage, FineTuningJob, JobCreateRequest
from gateway.routes.services import FineTuning

JOB = "/v1/fine_tuning/jobs/{job_id:str}"
After = Annotated[str | None, Parameter(description="The id of the last object of the previous page")]


JobsLimit = Annotated[int, Parameter(ge=1, le=100, description="At most this many jobs")]
EventsLimit = Annotated[int, Parameter(ge=1, le=1000, description="At most this many events")]
CheckpointsLimit = Annotated[int, Parameter(ge=1, le=100, description="At most this many checkpoints")]


@dataclass
class WithMetadataFilter(Operation):
    """The job list's `metadata[key]=value` filters, which no typed parameter can declare."""

    def __post_init__(self) -> None:
        metadata = ParameterSpec(
            name="metadata",
            param_in="query",
            required=False,
            style="deepObject",
            explode=True,
            description="Only jobs whose metadata has these values, as `metadata[key]=value`",
            schema=Schema(type=OpenAPIType.OBJECT, additional_properties=Schema(type=OpenAPIType.STRING)),
        )
        self.parameters = [*(self.parameters or []), metadata]


@post("/v1/fine_tuning/jobs", status_code=200, summary="Create a fine-tuning job", responses=error_responses(404, 413))
async def create_job(data: JobCreateRequest, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    return await fine_tuning.create(data, owner=owner)


@get(
    "/v1/fine_tuning/jobs",
    summary="List fine-tuning jobs",
    responses=error_responses(),
    operation_class=WithMetadataFilter,
)
async def list_jobs(
    request: Request,
    fine_tuning: FineTuning,
    owner: str,
    after: After = None,
    limit: JobsLimit = 20,
) -> CursorPage:
    metadata = metadata_filter(request.query_params.items())
    page = await asyncio.to_thread(fine_tuning.list, owner=owner, after=after, limit=limit, metadata=metadata)
    return CursorPage.of(page.items, page.has_more)


@get(JOB, summary="Retrieve a fine-tuning job", responses=error_responses(404))
async def retrieve_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    return await asyncio.to_thread(fine_tuning.get, job_id, owner=owner)


@post(JOB + "/cancel", status_code=200, summary="Cancel a fine-tuning job", responses=error_responses(404))
async def cancel_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    return await fine_tuning.cancel(job_id, owner=owner)


@post(JOB + "/pause", status_code=200, summary="Pause a fine-tuning job", responses=error_responses(404))
async def pause_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    """Its run saves its state at the next step and stops; the job keeps its place until it is resumed."""
    return await fine_tuning.pause(job_id, owner=owner)


@post(JOB + "/resume", status_code=200, summary="Resume a paused fine-tuning job", responses=error_responses(404))
async def resume_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    """The job is queued again and continues from the state it saved when it was paused."""
    return await fine_tuning.resume(job_id, owner=owner)


@get(JOB + "/events", summary="List a fine-tuning job's events", responses=error_responses(404))
async def list_events(
    job_id: str,
    fine_tuning: FineTuning,
    owner: str,
    after: After = None,
    limit: EventsLimit = 20,
) -> CursorPage:
    page = await asyncio.to_thread(fine_tuning.events, job_id, owner=owner, after=after, limit=limit)
    return CursorPage.of(page.items, page.has_more)


@get(JOB + "/checkpoints", summary="List a fine-tuning job's checkpoints", responses=error_responses(404))
async def list_checkpoints(
    job_id: str,
    fine_tuning: FineTuning,
    owner: str,
    after: After = None,
    limit: CheckpointsLimit = 10,
) -> CursorPage:
    page = await asyncio.to_thread(fine_tuning.checkpoints, job_id, owner=owner, after=after, limit=limit)
    return CursorPage.of(page.items, page.has_more)


def metadata_filter(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """`metadata[key]=value` pairs of a query string."""
    return {key[len("metadata[") : -1]: value for key, value in query if key.startswith("metadata[") and key.endswith("]")}
