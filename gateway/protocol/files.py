"""`/v1/files` wire types; the file object itself is the store's (`jobs.records.FileObject`)."""

from __future__ import annotations

from typing import Literal

import msgspec

from jobs.records import FileObject

__all__ = ["FileDeleted", "FileObject"]


class FileDeleted(msgspec.Struct, frozen=True):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
