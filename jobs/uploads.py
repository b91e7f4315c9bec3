"""OpenAI's Uploads: a file larger than one request, sent as parts and put together on completion.

Every part is an object of its own in the artifact store (`uploads/<id>/parts/<part id>`), so any gateway replica
on any node takes any part. The upload's record sits beside them (`uploads/<id>/upload.json`). Completing it
streams the parts, in the order the client names them, into a file on the local disk while counting and hashing
them, then streams that file to the store as a regular file: no step holds the whole file in memory."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from engines.artifacts import ArtifactStore
from engines.core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from jobs.files import PURPOSES, FileService, new_id
from jobs.records import FileObject

UPLOAD_LIFETIME_S = 3600
"""An upload not completed within an hour expires, as OpenAI's do."""
PREFIX = "uploads"

UploadStatus = Literal["pending", "completed", "cancelled", "expired"]


class Upload(msgspec.Struct, kw_only=True):
    """openai-python's `Upload`."""

    id: str
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: UploadStatus = "pending"
    object: Literal["upload"] = "upload"
    file: FileObject | None = None


class UploadPart(msgspec.Struct, kw_only=True):
    """openai-python's `UploadPart`."""

    id: str
    created_at: int
    upload_id: str
    object: Literal["upload.part"] = "upload.part"


class _Record(msgspec.Struct, kw_only=True):
    owner: str
    upload: Upload
    file_expires_after_s: int | None = None


class UploadService:
    def __init__(self, artifacts: ArtifactStore, files: FileService, *, clock: Callable[[], float] = time.time) -> None:
        self.artifacts = artifacts
        self.files = files
        self.clock = clock

    def create(self, *, owner: str, filename: str, purpose: str, size: int, expires_after_s: int | None = None) -> Upload:
        """`expires_after_s`: the lifetime of the file it makes (the upload's own is an hour)."""
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"Invalid purpose '{purpose}': expected one of {', '.join(PURPOSES)}.", param="purpose", code="invalid_value"
            )
        if size > self.files.max_bytes:
            raise PayloadTooLargeError(
                f"The file is {size} bytes; the limit is {self.files.max_bytes} bytes (MAX_UPLOAD_BYTES).", param="bytes"
            )
        now = int(self.clock())
        upload = Upload(
            id=new_id("upload"),
            bytes=size,
            created_at=now,
            expires_at=now + UPLOAD_LIFETIME_S,
            filename=filename,
            purpose=purpose,
        )
        self.files.check_expiry(expires_after_s)
        self._save(_Record(owner=owner, upload=upload, file_expires_after_s=expires_after_s))
        return upload

    def add_part(self, upload_id: str, data: bytes, *, owner: str) -> UploadPart:
        upload = self._pending(upload_id, owner)
        part = UploadPart(id=new_id("part"), created_at=int(self.clock()), upload_id=upload.id)
        self.artifacts.put_bytes(_part_key(upload.id, part.id), data)
        return part

    def complete(self, upload_id: str, part_ids: list[str], *, owner: str, md5: str | None = None) -> Upload:
        """The parts in `part_ids`' order become a file; its size must be the upload's `bytes`, its MD5 `md5`."""
        record = self._load(upload_id, owner)
        upload = self._pending(upload_id, owner, record)
        if not part_ids or len(set(part_ids)) != len(part_ids):
            raise InvalidRequestError("'part_ids' must name each part once.", param="part_ids", code="invalid_value")
        with tempfile.TemporaryDirectory(prefix="upload-") as work:
            assembled = Path(work) / "file"
            digest = self._assemble(upload, part_ids, assembled, Path(work) / "part")
            if md5 is not None and md5.lower() != digest:
                raise InvalidRequestError(f"The parts' MD5 is {digest}, not {md5}.", param="md5", code="invalid_value")
            upload.file = self.files.create_from_path(
                owner=owner,
                filename=upload.filename,
                purpose=upload.purpose,
                path=assembled,
                expires_after_s=record.file_expires_after_s,
            )
        upload.status = "completed"
        self._save(record)
        self.artifacts.delete_prefix(f"{PREFIX}/{upload.id}/parts")
        return upload

    def cancel(self, upload_id: str, *, owner: str) -> Upload:
        record = self._load(upload_id, owner)
        upload = self._pending(upload_id, owner, record)
        upload.status = "cancelled"
        self._save(record)
        self.artifacts.delete_prefix(f"{PREFIX}/{upload.id}/parts")
        return upload

    def _assemble(self, upload: Upload, part_ids: list[str], target: Path, scratch: Path) -> str:
        """Writes the parts into `target`; returns their MD5."""
        md5 = hashlib.md5(usedforsecurity=False)
        with target.open("wb") as out:
            for part_id in part_ids:
                try:
                    self.artifacts.get_file(_part_key(upload.id, part_id), scratch)
                except NotFoundError:
                    raise InvalidRequestError(
                        f"No part {part_id} in upload {upload.id}.", param="part_ids", code="invalid_value"
                    ) from None
                with scratch.open("rb") as part:
                    while chunk := part.read(1024 * 1024):
                        md5.update(chunk)
                        out.write(chunk)
                scratch.unlink()
        size = target.stat().st_size
        if size != upload.bytes:
            raise InvalidRequestError(
                f"The parts hold {size} bytes; the upload was created for {upload.bytes}.",
                param="part_ids",
                code="invalid_value",
            )
        return md5.hexdigest()

    def _pending(self, upload_id: str, owner: str, record: _Record | None = None) -> Upload:
        record = record or self._load(upload_id, owner)
        upload = record.upload
        if upload.status == "pending" and upload.expires_at <= self.clock():
            upload.status = "expired"
            self._save(record)
            self.artifacts.delete_prefix(f"{PREFIX}/{upload.id}/parts")
        if upload.status != "pending":
            raise InvalidRequestError(
                f"Upload {upload_id} is {upload.status}; only a pending upload takes parts or completes.",
                param="upload_id",
                code="invalid_state",
            )
        return upload

    def _load(self, upload_id: str, owner: str) -> _Record:
        if not upload_id.startswith("upload-") or "/" in upload_id:
            raise _missing(upload_id)
        try:
            record = msgspec.json.decode(self.artifacts.get_bytes(_record_key(upload_id)), type=_Record)
        except NotFoundError:
            raise _missing(upload_id) from None
        if record.owner != owner:
            raise _missing(upload_id)
        return record

    def _save(self, record: _Record) -> None:
        self.artifacts.put_bytes(_record_key(record.upload.id), msgspec.json.encode(record))


def _record_key(upload_id: str) -> str:
    return f"{PREFIX}/{upload_id}/upload.json"


def _part_key(upload_id: str, part_id: str) -> str:
    if not part_id.startswith("part-") or "/" in part_id:
        raise InvalidRequestError(f"No part {part_id} in upload {upload_id}.", param="part_ids", code="invalid_value")
    return f"{PREFIX}/{upload_id}/parts/{part_id}"


def _missing(upload_id: str) -> NotFoundError:
    return NotFoundError(f"No such Upload object: {upload_id}", param="upload_id", code="upload_not_found")
