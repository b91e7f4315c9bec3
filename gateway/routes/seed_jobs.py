"""The seed's job routes, thin adapters over the files and fine-tuning services. Paths they take are
confined to the platform's data roots."""

from __future__ import annotations

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State

from engines.core.errors import InvalidRequestError
from gateway.auth import caller
from gateway.protocol.fine_tuning import CursorPage, JobCreateRequest, SeedFineTuneRequest
from gateway.routes.body import decode_body, json_response
from gateway.routes.query import int_param
from jobs.datasets import confined_path
from jobs.files import FileService
from jobs.service import FineTuningService


@post("/fine-tune", status_code=200)
async def seed_fine_tune(request: Request, state: State) -> Response:
    body = await decode_body(request, SeedFineTuneRequest)
    service: FineTuningService = state.fine_tuning
    files: FileService = state.files
    owner = caller(request)
    dataset = confined_path(body.dataset_path, service.data_roots, param="dataset_path")
    output = confined_path(body.output_path, service.data_roots, param="output_path") if body.output_path else None
    if dataset.is_file():
        uploaded = files.create(owner=owner, filename=dataset.name, purpose="fine-tune", content=dataset.read_bytes())
        training_file = uploaded.id
    elif dataset.is_dir():
        training_file = str(dataset)
    else:
        raise InvalidRequestError(f"No dataset at '{body.dataset_path}'.", param="dataset_path", code="file_not_found")
    job_request = JobCreateRequest(
        model=service.base_model_id,
        training_file=training_file,
        hyperparameters=body.hyperparameters,
        suffix=body.suffix,
    )
    job = service.create(job_request, owner=owner, copy_to=str(output) if output else None)
    return json_response(job)


@get("/jobs")
async def seed_list_jobs(request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    page = service.list(
        owner=caller(request), after=None, limit=int_param(request, "limit", default=100, low=1, high=100), metadata={}
    )
    return json_response(CursorPage.of(page.items, page.has_more))


@get("/jobs/{job_id:str}")
async def seed_get_job(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    return json_response(service.get(job_id, owner=caller(request)))


@delete("/jobs/{job_id:str}", status_code=200)
async def seed_cancel_job(job_id: str, request: Request, state: State) -> Response:
    service: FineTuningService = state.fine_tuning
    return json_response(service.cancel(job_id, owner=caller(request)))
