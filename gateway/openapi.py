"""The platform's OpenAPI document, built from the same msgspec types that decode the requests, so it
describes exactly what the routes accept. Served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.protocol.chat import ChatCompletion, ChatCompletionRequest
from gateway.protocol.errors import ErrorEnvelope
from gateway.protocol.files import FileDeleted, FileObject
from gateway.protocol.fine_tuning import CursorPage, FineTuningJob, JobCreateRequest, SeedFineTuneRequest
from gateway.protocol.models import Model, ModelList
from gateway.routes.seed import SeedChatRequest, SeedChatResponse

_REF = "#/components/schemas/{name}"
_TYPES = [
    ChatCompletionRequest,
    ChatCompletion,
    ErrorEnvelope,
    FileObject,
    FileDeleted,
    CursorPage,
    FineTuningJob,
    JobCreateRequest,
    SeedFineTuneRequest,
    Model,
    ModelList,
    SeedChatRequest,
    SeedChatResponse,
]


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _json(kind: type) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(kind)}}}


def _responses(ok: type | None, *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", **(_json(ok) if ok else {})}}
    for status in (*errors, 401, 429):
        responses[str(status)] = {"description": "Error", **_json(ErrorEnvelope)}
    return responses


def _operation(summary: str, ok: type | None, *errors: int, body: type | None = None, params: list | None = None) -> dict:
    operation: dict[str, Any] = {"summary": summary, "responses": _responses(ok, *errors)}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    if params:
        operation["parameters"] = params
    return operation


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_LIMIT = {"type": "integer"}
_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "purpose"],
                "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"type": "string"}},
            }
        }
    },
}


def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    file_id, job_id, model_id = _path_param("file_id"), _path_param("job_id"), _path_param("model_id")
    paging = [_query("after", {"type": "string"}), _query("limit", _LIMIT)]
    upload = _operation("Upload a file", FileObject, 400, 413)
    upload["requestBody"] = _UPLOAD
    paths = {
        "/health": {"get": {"summary": "Health", "responses": {"200": {"description": "OK"}, "503": _json(ErrorEnvelope)}}},
        "/v1/models": {"get": _operation("List models", ModelList)},
        "/v1/models/{model_id}": {"get": _operation("Retrieve a model", Model, 404, params=[model_id])},
        "/v1/chat/completions": {
            "post": _operation("Create a chat completion", ChatCompletion, 400, 404, 413, 503, body=ChatCompletionRequest)
        },
        "/chat": {"post": _operation("The seed's chat", SeedChatResponse, 400, 404, 503, body=SeedChatRequest)},
        "/v1/files": {
            "post": upload,
            "get": _operation(
                "List files",
                CursorPage,
                400,
                params=[*paging, _query("purpose", {"type": "string"}), _query("order", {"type": "string"})],
            ),
        },
        "/v1/files/{file_id}": {
            "get": _operation("Retrieve a file", FileObject, 404, params=[file_id]),
            "delete": _operation("Delete a file", FileDeleted, 404, params=[file_id]),
        },
        "/v1/files/{file_id}/content": {"get": _operation("File content", None, 404, params=[file_id])},
        "/v1/fine_tuning/jobs": {
            "post": _operation("Create a fine-tuning job", FineTuningJob, 400, 404, body=JobCreateRequest),
            "get": _operation("List fine-tuning jobs", CursorPage, 400, params=paging),
        },
        "/v1/fine_tuning/jobs/{job_id}": {"get": _operation("Retrieve a job", FineTuningJob, 404, params=[job_id])},
        "/v1/fine_tuning/jobs/{job_id}/cancel": {
            "post": _operation("Cancel a job", FineTuningJob, 400, 404, params=[job_id])
        },
        "/v1/fine_tuning/jobs/{job_id}/events": {
            "get": _operation("List a job's events", CursorPage, 400, 404, params=[job_id, *paging])
        },
        "/v1/fine_tuning/jobs/{job_id}/checkpoints": {
            "get": _operation("List a job's checkpoints", CursorPage, 400, 404, params=[job_id, *paging])
        },
        "/fine-tune": {"post": _operation("The seed's fine-tune", FineTuningJob, 400, 404, body=SeedFineTuneRequest)},
        "/jobs": {"get": _operation("The seed's job list", CursorPage, 400)},
        "/jobs/{job_id}": {
            "get": _operation("The seed's job", FineTuningJob, 404, params=[job_id]),
            "delete": _operation("The seed's cancel", FineTuningJob, 400, 404, params=[job_id]),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM platform", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": components},
    }
