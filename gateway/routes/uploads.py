"""`/v1/uploads`: a file larger than one request, sent in parts (the openai SDK's `uploads.upload_file_chunked`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from gateway.protocol.errors import error_responses
from gateway.protocol.uploads import Upload, UploadCompleteRequest, UploadCreateRequest, UploadPart, UploadPartBody
from gateway.routes.services import Uploads

UPLOAD = "/v1/uploads/{upload_id:str}"


@post("/v1/uploads", status_code=200, summary="Create an upload", responses=error_responses(413))
async def create_upload(data: UploadCreateRequest, uploads: Uploads, owner: str) -> Upload:
    return await asyncio.to_thread(
        uploads.create,
        owner=owner,
        filename=data.filename,
        purpose=data.purpose,
        size=data.bytes,
        expires_after_s=data.expires_after.seconds if data.expires_after else None,
    )


@post(f"{UPLOAD}/parts", status_code=200, summary="Add a part to an upload", responses=error_responses(404, 413))
async def add_upload_part(
    upload_id: str,
    data: Annotated[UploadPartBody, Body(media_type=RequestEncodingType.MULTI_PART)],
    uploads: Uploads,
    owner: str,
) -> UploadPart:
    chunk = await data.data.read()
    return await asyncio.to_thread(uploads.add_part, upload_id, chunk, owner=owner)


@post(f"{UPLOAD}/complete", status_code=200, summary="Complete an upload", responses=error_responses(404))
async def complete_upload(upload_id: str, data: UploadCompleteRequest, uploads: Uploads, owner: str) -> Upload:
    return await asyncio.to_thread(uploads.complete, upload_id, data.part_ids, owner=owner, md5=data.md5)


@post(f"{UPLOAD}/cancel", status_code=200, summary="Cancel an upload", responses=error_responses(404))
async def cancel_upload(upload_id: str, uploads: Uploads, owner: str) -> Upload:
    return await asyncio.to_thread(uploads.cancel, upload_id, owner=owner)
