"""The files service: contents in the artifact store under `files/<id>` (written atomically there), the
file objects in the metadata store, so any process on any node serves them. A `fine-tune` file is checked as it is
uploaded: one that no job could train on has status `error` and says why in `status_details`. A file with an
`expires_at` is gone once that time has passed (removed when it is next looked up or listed)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from engines.artifacts import ArtifactStore
from engines.core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, PlatformError
from jobs.data import check_jsonl_file, parse_jsonl
from jobs.records import FileObject
from jobs.store import Page, Store

PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")
EXPIRY_RANGE_S = (3600, 30 * 24 * 3600)
"""OpenAI's bounds on `expires_after.seconds`: an hour to 30 days."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._\- ]")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def safe_filename(name: str) -> str:
    """The client's name as a plain base name: no directories, no control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    return cleaned[:255] or "upload"


class FileService:
    def __init__(
        self, store: Store, artifacts: ArtifactStore, *, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.max_bytes = max_bytes
        self.clock = clock

    def create(
        self, *, owner: str, filename: str, purpose: str, content: bytes, expires_after_s: int | None = None
    ) -> FileObject:
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"Invalid purpose '{purpose}': expected one of {', '.join(PURPOSES)}.", param="purpose", code="invalid_value"
            )
        if len(content) > self.max_bytes:
            raise PayloadTooLargeError(
                f"The file is {len(content)} bytes; the limit is {self.max_bytes} bytes (MAX_UPLOAD_BYTES).", param="file"
            )
        self.check_expiry(expires_after_s)
        return self._add(
            owner,
            filename,
            purpose,
            len(content),
            expires_after_s,
            check=lambda: parse_jsonl(content),
            put=lambda key: self.artifacts.put_bytes(key, content),
        )

    def create_from_path(
        self, *, owner: str, filename: str, purpose: str, path: Path, expires_after_s: int | None = None
    ) -> FileObject:
        """A file whose content is at `path` (an upload put together from its parts), streamed to the store and
        checked line by line, never read whole."""
        return self._add(
            owner,
            filename,
            purpose,
            path.stat().st_size,
            expires_after_s,
            check=lambda: check_jsonl_file(path),
            put=lambda key: self.artifacts.put_file(key, path),
        )

    def _add(
        self,
        owner: str,
        filename: str,
        purpose: str,
        size: int,
        expires_after_s: int | None,
        *,
        check: Callable[[], object],
        put: Callable[[str], None],
    ) -> FileObject:
        """Stores a file: `check` runs a fine-tuning job's checks on its content, `put` writes it under a key."""
        created_at = int(self.clock())
        file = FileObject(
            id=new_id("file"),
            bytes=size,
            created_at=created_at,
            filename=safe_filename(filename),
            purpose=purpose,
            expires_at=created_at + expires_after_s if expires_after_s is not None else None,
        )
        if purpose == "fine-tune":
            file.status_details = _unusable_because(check)
            file.status = "error" if file.status_details else "processed"
        key = f"files/{file.id}"
        put(key)
        self.store.add_file(file, owner=owner, key=key)
        return file

    @staticmethod
    def check_expiry(expires_after_s: int | None) -> None:
        low, high = EXPIRY_RANGE_S
        if expires_after_s is not None and not low <= expires_after_s <= high:
            raise InvalidRequestError(
                f"Invalid 'expires_after.seconds': must be between {low} and {high}.",
                param="expires_after.seconds",
                code="invalid_value",
            )

    def get(self, file_id: str, *, owner: str) -> FileObject:
        return self._find(file_id, owner)[0]

    def content(self, file_id: str, *, owner: str) -> bytes:
        return self.artifacts.get_bytes(self._find(file_id, owner)[1])

    def list(self, *, owner: str, purpose: str | None, after: str | None, limit: int, order: str) -> Page:
        page = self.store.list_files(owner=owner, purpose=purpose, after=after, limit=limit, ascending=order == "asc")
        expired = [file for file in page.items if self._expired(file)]
        for file in expired:
            self._remove(file.id, owner)
        return Page([file for file in page.items if file not in expired], page.has_more) if expired else page

    def delete(self, file_id: str, *, owner: str) -> None:
        if not self._remove(file_id, owner):
            raise _missing(file_id)

    def _remove(self, file_id: str, owner: str) -> bool:
        key = self.store.delete_file(file_id, owner=owner)
        if key is None:
            return False
        self.artifacts.delete(key)
        return True

    def store_result(self, *, owner: str, filename: str, content: bytes) -> FileObject:
        """A file the platform writes itself (a job's metrics CSV); not subject to the upload limit."""
        return self._add(
            owner,
            filename,
            "fine-tune-results",
            len(content),
            None,
            check=lambda: None,
            put=lambda key: self.artifacts.put_bytes(key, content),
        )

    def _find(self, file_id: str, owner: str) -> tuple[FileObject, str]:
        found = self.store.get_file(file_id, owner=owner)
        if found is None:
            raise _missing(file_id)
        if self._expired(found[0]):
            self._remove(file_id, owner)
            raise _missing(file_id)
        return found

    def _expired(self, file: FileObject) -> bool:
        return file.expires_at is not None and file.expires_at <= self.clock()


def _unusable_because(check: Callable[[], object]) -> str | None:
    """Why no fine-tuning job could train on a file, or None: `check` runs the checks a job runs on its files."""
    try:
        check()
    except PlatformError as exc:
        return exc.message
    return None


def _missing(file_id: str) -> NotFoundError:
    return NotFoundError(f"No such File object: {file_id}", param="id", code="file_not_found")
