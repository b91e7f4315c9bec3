"""The seed's routes, thin adapters over the chat, files and fine-tuning services. Paths they take are
confined to the platform's data roots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Request, delete, get, post
from litestar.params import Parameter

from engines.core.errors import InvalidRequestError
from gateway.observability import request_log
from gateway.protocol.chat import ChatCompletion, ChatCompletionRequest, UserMessage
from gateway.protocol.errors import error_responses
from gateway.protocol.fine_tuning import CursorPage, FineTuningJob, JobCreateRequest
from gateway.protocol.seed import SeedChatRequest, SeedChatResponse, SeedFineTuneRequest
from gateway.routes.services import Chat, Files, FineTuning
from jobs.datasets import confined_path

SeedLimit = Annotated[int, Parameter(ge=1, le=100, description="At most this many jobs")]


@post("/chat", status_code=200, summary="The seed's chat", responses=error_responses(404, 413, 503))
async def seed_chat(data: SeedChatRequest, request: Request, chat: Chat, owner: str) -> SeedChatResponse:
    if data.adapter_path is not None:
        raise InvalidRequestError(
            "'adapter_path' is not accepted: name an adapter model with 'adapter' (see GET /v1/models).",
            param="adapter_path",
            code="invalid_value",
        )
    model = data.adapter or chat.models.base.id
    body = ChatCompletionRequest(
        model=model, messages=[UserMessage(content=data.prompt)], max_tokens=data.max_tokens, temperature=data.temperature
    )
    result = await chat.create(body, request_log(request), owner=owner)
    assert isinstance(result, ChatCompletion)  # not streamed
    choice = result.choices[0]
    return SeedChatResponse(
        id=result.id,
        model=model,
        text=choice.message.content or "",
        finish_reason=choice.finish_reason,
        usage=msgspec.structs.asdict(result.usage),
    )


@post("/fine-tune", status_code=200, summary="The seed's fine-tune", responses=error_responses(404))
async def seed_fine_tune(data: SeedFineTuneRequest, files: Files, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    roots = fine_tuning.data_roots
    dataset = confined_path(data.dataset_path, roots, param="dataset_path")
    output = confined_path(data.output_path, roots, param="output_path") if data.output_path else None
    training_file = await asyncio.to_thread(_training_file, dataset, data.dataset_path, files, owner)
    job_request = JobCreateRequest(
        model=fine_tuning.base_model_id,
        training_file=training_file,
        hyperparameters=data.hyperparameters,
        suffix=data.suffix,
    )
    return await fine_tuning.create(job_request, owner=owner, copy_to=str(output) if output else None)


def _training_file(dataset: Path, given: str, files: Files, owner: str) -> str:
    """A dataset file is uploaded as the job's training file; a dataset directory is used where it is."""
    if dataset.is_file():
        return files.create(owner=owner, filename=dataset.name, purpose="fine-tune", content=dataset.read_bytes()).id
    if dataset.is_dir():
        return str(dataset)
    raise InvalidRequestError(f"No dataset at '{given}'.", param="dataset_path", code="file_not_found")


@get("/jobs", summary="The seed's job list", responses=error_responses())
async def seed_list_jobs(fine_tuning: FineTuning, owner: str, limit: SeedLimit = 100) -> CursorPage:
    page = await asyncio.to_thread(fine_tuning.list, owner=owner, after=None, limit=limit, metadata={})
    return CursorPage.of(page.items, page.has_more)


@get("/jobs/{job_id:str}", summary="The seed's job", responses=error_responses(404))
async def seed_get_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    return await asyncio.to_thread(fine_tuning.get, job_id, owner=owner)


@delete("/jobs/{job_id:str}", status_code=200, summary="The seed's cancel", responses=error_responses(404))
async def seed_cancel_job(job_id: str, fine_tuning: FineTuning, owner: str) -> FineTuningJob:
    return await fine_tuning.cancel(job_id, owner=owner)
