from __future__ import annotations

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State, UploadFile

from engines.core.errors import InvalidRequestError
from gateway.auth import caller
from gateway.protocol.files import FileDeleted
from gateway.protocol.fine_tuning import CursorPage
from gateway.routes.body import json_response
from gateway.routes.query import choice_param, int_param
from jobs.files import FileService


@post("/v1/files", status_code=200)
async def upload_file(request: Request, state: State) -> Response:
    form = await request.form()
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError(
            "Missing required parameter: 'file' (multipart upload).", param="file", code="missing_required_parameter"
        )
    if not isinstance(purpose, str) or not purpose:
        raise InvalidRequestError(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    files: FileService = state.files
    content = await upload.read()
    return json_response(files.create(owner=caller(request), filename=upload.filename, purpose=purpose, content=content))


@get("/v1/files")
async def list_files(request: Request, state: State) -> Response:
    files: FileService = state.files
    page = files.list(
        owner=caller(request),
        purpose=request.query_params.get("purpose"),
        after=request.query_params.get("after"),
        limit=int_param(request, "limit", default=10_000, low=1, high=10_000),
        order=choice_param(request, "order", default="desc", choices=("asc", "desc")),
    )
    return json_response(CursorPage.of(page.items, page.has_more))


@get("/v1/files/{file_id:str}")
async def retrieve_file(file_id: str, request: Request, state: State) -> Response:
    files: FileService = state.files
    return json_response(files.get(file_id, owner=caller(request)))


@get("/v1/files/{file_id:str}/content")
async def file_content(file_id: str, request: Request, state: State) -> Response:
    files: FileService = state.files
    return Response(content=files.content(file_id, owner=caller(request)), media_type="application/octet-stream")


@delete("/v1/files/{file_id:str}", status_code=200)
async def delete_file(file_id: str, request: Request, state: State) -> Response:
    files: FileService = state.files
    files.delete(file_id, owner=caller(request))
    return json_response(FileDeleted(id=file_id))
