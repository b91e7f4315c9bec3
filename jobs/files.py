"""The files service: contents in the artifact store under `files/<id>` (written atomically there), the
file objects in the metadata store, so any process on any node serves them."""

from __future__ import annotations

import re
import secrets
import time

from engines.artifacts import ArtifactStore
from engines.core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from jobs.records import FileObject
from jobs.store import Page, Store

PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")
_UNSAFE = re.compile(r"[^A-Za-z0-9._\- ]")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def safe_filename(name: str) -> str:
    """The client's name as a plain base name: no directories, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    return cleaned[:255] or "upload"


class FileService:
    def __init__(self, store: Store, artifacts: ArtifactStore, *, max_bytes: int) -> None:
        self.store = store
        self.artifacts = artifacts
        self.max_bytes = max_bytes

    def create(self, *, owner: str, filename: str, purpose: str, content: bytes) -> FileObject:
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"Invalid purpose '{purpose}': expected one of {', '.join(PURPOSES)}.", param="purpose", code="invalid_value"
            )
        if len(content) > self.max_bytes:
            raise PayloadTooLargeError(
                f"The file is {len(content)} bytes; the limit is {self.max_bytes} bytes (MAX_UPLOAD_BYTES).", param="file"
            )
        file = FileObject(
            id=new_id("file"),
            bytes=len(content),
            created_at=int(time.time()),
            filename=safe_filename(filename),
            purpose=purpose,
        )
        key = f"files/{file.id}"
        self.artifacts.put_bytes(key, content)
        self.store.add_file(file, owner=owner, key=key)
        return file

    def get(self, file_id: str, *, owner: str) -> FileObject:
        return self._find(file_id, owner)[0]

    def content(self, file_id: str, *, owner: str) -> bytes:
        return self.artifacts.get_bytes(self._find(file_id, owner)[1])

    def list(self, *, owner: str, purpose: str | None, after: str | None, limit: int, order: str) -> Page:
        return self.store.list_files(owner=owner, purpose=purpose, after=after, limit=limit, ascending=order == "asc")

    def delete(self, file_id: str, *, owner: str) -> None:
        key = self.store.delete_file(file_id, owner=owner)
        if key is None:
            raise _missing(file_id)
        self.artifacts.delete(key)

    def store_result(self, *, owner: str, filename: str, content: bytes) -> FileObject:
        """A file the platform writes itself (a job's metrics CSV); not subject to the upload limit."""
        file = FileObject(
            id=new_id("file"),
            bytes=len(content),
            created_at=int(time.time()),
            filename=filename,
            purpose="fine-tune-results",
        )
        key = f"files/{file.id}"
        self.artifacts.put_bytes(key, content)
        self.store.add_file(file, owner=owner, key=key)
        return file

    def _find(self, file_id: str, owner: str) -> tuple[FileObject, str]:
        found = self.store.get_file(file_id, owner=owner)
        if found is None:
            raise _missing(file_id)
        return found


def _missing(file_id: str) -> NotFoundError:
    return NotFoundError(f"No such File object: {file_id}", param="id", code="file_not_found")
