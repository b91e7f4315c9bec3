"""`/v1/uploads` wire types: requests here, the Upload and UploadPart objects as the uploads service keeps them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

from jobs.uploads import Upload, UploadPart

__all__ = ["Upload", "UploadCompleteRequest", "UploadCreateRequest", "UploadPart", "UploadPartBody"]


class ExpiresAfter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    anchor: Literal["created_at"]
    seconds: int


class UploadCreateRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bytes: Annotated[int, msgspec.Meta(ge=1)]
    filename: Annotated[str, msgspec.Meta(min_length=1)]
    mime_type: str
    purpose: str
    expires_after: ExpiresAfter | None = None


class UploadCompleteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    part_ids: list[str]
    md5: str | None = None


class UploadPartBody(msgspec.Struct, kw_only=True):
    data: UploadFile
