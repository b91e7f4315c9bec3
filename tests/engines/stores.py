"""Helpers of the artifact store tests: buckets on the tests' S3 server, and a store that records its calls."""

from __future__ import annotations

import builtins
import time
import uuid
from pathlib import Path

import boto3

from engines.artifacts import ArtifactStore


def new_bucket() -> str:
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


class ObservedStore:
    """Delegates to `inner`, recording each write and download; `delay_s` slows downloads to widen race windows and
    `download_log` counts them across processes."""

    def __init__(self, inner: ArtifactStore, *, delay_s: float = 0.0, download_log: Path | None = None) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.download_log = download_log
        self.puts: builtins.list[str] = []
        self.downloads: builtins.list[str] = []

    def put_bytes(self, key: str, data: bytes) -> None:
        self.puts.append(key)
        self.inner.put_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def put_file(self, key: str, source: Path) -> None:
        self.puts.append(key)
        self.inner.put_file(key, source)

    def get_file(self, key: str, target: Path) -> None:
        self.downloads.append(key)
        if self.download_log is not None:
            with self.download_log.open("a") as log:
                log.write(key + "\n")
        time.sleep(self.delay_s)
        self.inner.get_file(key, target)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str = "") -> builtins.list[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(prefix)
