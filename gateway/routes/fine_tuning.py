from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway.auth import caller
from gateway.protocol.fine_tuning import CursorPage, JobCreateRequest
from gateway.routes.body import decode_body, json_response
from gateway.routes.query import int_param, metadata_filter
from jobs.service import FineTuningService

JOB = "/v1/fine_tuning/jobs/{job_id:str}"


@post("/v1/fine_tuning/jobs", status_code=200)
async def create_job(request: Request, state: State) -> Response:
    body = await decode_body(request, JobCreateRequest)
    service: FineTuningService = state.fine_tuning
    return json_response(service.create(body, owner=caller(request)))


@get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    page = service.list(
        owner=caller(request),
        after=request.query_params.get("after"),
        limit=int_param(request, "limit", default=20, low=1, high=100),
        metadata=metadata_filter(request),
    )
    return json_response(CursorPage.of(page.items, page.has_more))


@get(JOB)
async def retrieve_job(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    return json_response(service.get(job_id, owner=caller(request)))


@post(JOB + "/cancel", status_code=200)
async def cancel_job(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    return json_response(service.cancel(job_id, owner=caller(request)))


@get(JOB + "/events")
async def list_events(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    page = service.events(
        job_id,
        owner=caller(request),
        after=request.query_params.get("after"),
        limit=int_param(request, "limit", default=20, low=1, high=1000),
    )
    return json_response(CursorPage.of(page.items, page.has_more))


@get(JOB + "/checkpoints")
async def list_checkpoints(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    page = service.checkpoints(
        job_id,
        owner=caller(request),
        after=request.query_params.get("after"),
        limit=int_param(request, "limit", default=10, low=1, high=100),
    )
    return json_response(CursorPage.of(page.items, page.has_more))
