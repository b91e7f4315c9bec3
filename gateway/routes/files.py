from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import msgspec
from litestar import Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter

from engines.core.errors import InvalidRequestError
from gateway.protocol.errors import error_responses
from gateway.protocol.files import FileDeleted, FileObject
from gateway.protocol.fine_tuning import CursorPage
from gateway.routes.services import Files


class FileUpload(msgspec.Struct, kw_only=True):
    file: UploadFile
    purpose: str
    expires_anchor: Literal["created_at"] | None = msgspec.field(default=None, name="expires_after[anchor]")
    """The openai SDK sends `expires_after` as these two form fields."""
    expires_seconds: int | None = msgspec.field(default=None, name="expires_after[seconds]")


Multipart = Body(media_type=RequestEncodingType.MULTI_PART)
Limit = Annotated[int, Parameter(ge=1, le=10_000, description="At most this many files")]


@post("/v1/files", status_code=200, summary="Upload a file", responses=error_responses(413))
async def upload_file(data: Annotated[FileUpload, Multipart], files: Files, owner: str) -> FileObject:
    content = await data.file.read()
    if (data.expires_anchor is None) != (data.expires_seconds is None):
        raise InvalidRequestError(
            "'expires_after' needs both 'anchor' (created_at) and 'seconds'.", param="expires_after", code="invalid_value"
        )
    return await asyncio.to_thread(
        files.create,
        owner=owner,
        filename=data.file.filename,
        purpose=data.purpose,
        content=content,
        expires_after_s=data.expires_seconds,
    )


@get("/v1/files", summary="List files", responses=error_responses())
async def list_files(
    files: Files,
    owner: str,
    purpose: str | None = None,
    after: str | None = None,
    limit: Limit = 10_000,
    order: Literal["asc", "desc"] = "desc",
) -> CursorPage:
    page = await asyncio.to_thread(files.list, owner=owner, purpose=purpose, after=after, limit=limit, order=order)
    return CursorPage.of(page.items, page.has_more)


@get("/v1/files/{file_id:str}", summary="Retrieve a file", responses=error_responses(404))
async def retrieve_file(file_id: str, files: Files, owner: str) -> FileObject:
    return await asyncio.to_thread(files.get, file_id, owner=owner)


@get(
    "/v1/files/{file_id:str}/content",
    summary="Retrieve a file's content",
    media_type="application/octet-stream",
    responses=error_responses(404),
)
async def file_content(file_id: str, files: Files, owner: str) -> Response[bytes]:
    content = await asyncio.to_thread(files.content, file_id, owner=owner)
    return Response(content=content, media_type="application/octet-stream")


@delete("/v1/files/{file_id:str}", status_code=200, summary="Delete a file", responses=error_responses(404))
async def delete_file(file_id: str, files: Files, owner: str) -> FileDeleted:
    await asyncio.to_thread(files.delete, file_id, owner=owner)
    return FileDeleted(id=file_id)
