"""The artifact store: where uploaded files, training files, checkpoints and adapters live, so that no process
assumes a disk shared with another. `ARTIFACT_STORE` picks it: a local directory (the default, for one machine)
or `s3://bucket/prefix` on any S3-compatible store, reached through boto3's own configuration (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, ...).

Keys are relative posix paths (`adapters/<digest>/manifest.json`). A write is all or nothing: a reader sees the
old object or the whole new one, never part of one. Failures a client may see are the platform's errors: a missing
key is `NotFoundError`, a store that cannot be reached `ServiceUnavailableError`."""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from engines.core.errors import NotFoundError, PlatformError, ServiceUnavailableError

MAX_KEY_LENGTH = 1024
"""S3's limit, in UTF-8 bytes; the local store keeps it too so a key valid on one backend is valid on both."""


class ArtifactStore(Protocol):
    """A flat namespace of immutable-by-convention objects under string keys. Implementations are thread-safe."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Writes `data` under `key`, replacing any object there, atomically."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object under `key`; `NotFoundError` if there is none."""
        ...

    def put_file(self, key: str, source: Path) -> None:
        """Streams the local file `source` to `key`, atomically; for objects too large to hold in memory."""
        ...

    def get_file(self, key: str, target: Path) -> None:
        """Streams the object under `key` into the local file `target` (its folders made as needed), which
        appears only once complete; `NotFoundError` if there is no such object."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """The sorted keys under the folder `prefix` (`a/b` lists `a/b/...`, not `a/bc`); "" lists every key."""
        ...

    def delete(self, key: str) -> None:
        """Removes the object under `key`; a missing one is not an error, so a cleanup can be retried."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object under the folder `prefix` (never "": that would be the whole store); returns how
        many there were."""
        ...


def validate_key(key: str) -> str:
    """Returns `key` if it is a relative posix path of visible names, else raises `ValueError`. Keys are built by
    the platform, so a bad one is a bug: `..`, absolute paths and empty segments would escape or alias a local
    store's root, and names starting with "." are reserved for the local store's partial writes."""
    if not key or len(key.encode()) > MAX_KEY_LENGTH:
        raise ValueError(f"An artifact key must be 1 to {MAX_KEY_LENGTH} bytes long, got {len(key.encode())}")
    if "\\" in key or "\0" in key:
        raise ValueError(f"An artifact key must not contain a backslash or NUL: {key!r}")
    if any(not segment or segment.startswith(".") for segment in key.split("/")):
        raise ValueError(
            f"An artifact key is a relative posix path whose names are not empty and do not start with '.': {key!r}"
        )
    return key


def _folder(prefix: str) -> str:
    """A listing prefix without its trailing "/"; "" stays "" (the whole store)."""
    prefix = prefix.rstrip("/")
    return validate_key(prefix) if prefix else ""


def _non_empty_folder(prefix: str) -> str:
    folder = _folder(prefix)
    if not folder:
        raise ValueError("delete_prefix needs a non-empty prefix; it never deletes the whole store")
    return folder


def _write_atomically(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
    """Writes `path` through a hidden temporary file in its folder, fsynced and then renamed over it, so a reader
    (or a crash) finds the old file or the whole new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Makes the entries of the folder `path` (a rename into it) durable across a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_found(key: str) -> NotFoundError:
    return NotFoundError(f"The artifact '{key}' does not exist.", code="artifact_not_found")


class LocalArtifactStore:
    """Objects as files under `root`: the default, for a single machine or a disk that is really shared. Partial
    writes are hidden files next to their target (never listed), renamed into place once complete."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        _write_atomically(self._path(key), lambda file: file.write(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _not_found(key) from None

    def put_file(self, key: str, source: Path) -> None:
        path = self._path(key)
        with source.open("rb") as reader:
            _write_atomically(path, lambda file: shutil.copyfileobj(reader, file))

    def get_file(self, key: str, target: Path) -> None:
        try:
            reader = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _not_found(key) from None
        with reader:
            _write_atomically(target, lambda file: shutil.copyfileobj(reader, file))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> builtins.list[str]:
        folder = self.root / _folder(prefix)
        keys: list[str] = []
        for parent, dirnames, filenames in os.walk(folder):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            relative = Path(parent).relative_to(self.root)
            keys.extend((relative / name).as_posix() for name in filenames if not name.startswith("."))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder = _non_empty_folder(prefix)
        count = len(self.list(folder))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            shutil.rmtree(self.root / folder)
        return count


NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
"""What S3 answers for a missing object: GetObject says NoSuchKey, HeadObject (which has no body) a bare 404."""

DELETE_BATCH = 1000
"""The most keys one DeleteObjects request may name."""


class S3ArtifactStore:
    """Objects in `bucket` under `prefix`, on AWS S3 or any S3-compatible store. S3 makes an object visible only
    once its upload completes (multipart ones included), which gives the all-or-nothing writes; `client` defaults to
    `boto3.client("s3")`, configured by the usual AWS variables and files."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise ValueError("An S3 artifact store needs a bucket")
        self.bucket = bucket
        self.prefix = _folder(prefix)
        self._client = client if client is not None else boto3.client("s3")

    def __repr__(self) -> str:
        return f"S3ArtifactStore('s3://{self.bucket}/{self.prefix}')"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{validate_key(key)}" if self.prefix else validate_key(key)

    def _folder_key(self, prefix: str) -> str:
        """The S3 prefix of a folder, with its trailing "/" so `a/b` never matches `a/bc/...`."""
        folder = "/".join(part for part in (self.prefix, _folder(prefix)) if part)
        return f"{folder}/" if folder else ""

    @contextlib.contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turns boto's exceptions into the platform's errors; the original stays chained for the server's logs."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in NOT_FOUND_CODES:
                raise _not_found(key) from exc
            if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
                raise ServiceUnavailableError("The artifact store is busy or failing; try again later.") from exc
            raise PlatformError(
                f"The artifact store refused to {action} '{key}': {code} {error.get('Message', '')}".rstrip(),
                code="artifact_store_error",
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceUnavailableError("The artifact store cannot be reached; try again later.") from exc
        except BotoCoreError as exc:  # credentials, configuration: an operator has to fix these
            raise PlatformError(
                f"The artifact store failed to {action} '{key}': {exc}", code="artifact_store_error"
            ) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        object_key = self._object_key(key)
        with self._translated("write", key):
            self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data)

    def get_bytes(self, key: str) -> bytes:
        object_key = self._object_key(key)
        with self._translated("read", key):
            body = self._client.get_object(Bucket=self.bucket, Key=object_key)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
                return data

    def put_file(self, key: str, source: Path) -> None:
        object_key = self._object_key(key)
        with source.open("rb") as reader, self._translated("write", key):
            self._client.upload_fileobj(reader, self.bucket, object_key)

    def get_file(self, key: str, target: Path) -> None:
        object_key = self._object_key(key)
        with self._translated("read", key):
            _write_atomically(target, lambda file: self._client.download_fileobj(self.bucket, object_key, file))

    def exists(self, key: str) -> bool:
        object_key = self._object_key(key)
        try:
            with self._translated("look up", key):
                self._client.head_object(Bucket=self.bucket, Key=object_key)
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> builtins.list[str]:
        folder = self._folder_key(prefix)
        strip = len(f"{self.prefix}/") if self.prefix else 0
        keys: list[str] = []
        with self._translated("list", prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", ()))
        return sorted(keys)

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._translated("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def delete_prefix(self, prefix: str) -> int:
        folder = _non_empty_folder(prefix)
        keys = [self._object_key(key) for key in self.list(folder)]
        with self._translated("delete", folder):
            for start in range(0, len(keys), DELETE_BATCH):
                batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    failed = answer["Errors"][0]
                    raise PlatformError(
                        f"The artifact store failed to delete '{failed.get('Key')}': {failed.get('Code')}",
                        code="artifact_store_error",
                    )
        return len(keys)


def artifact_store_from_url(url: str, *, default_root: Path) -> ArtifactStore:
    """The store `ARTIFACT_STORE` names: "" is `default_root`; a path or `file://<path>` a local directory (relative
    paths resolved now, since Ray workers run in other folders); `s3://<bucket>[/<prefix>]` an S3 bucket."""
    if not url:
        return LocalArtifactStore(default_root.resolve())
    parts = urlsplit(url)
    if parts.scheme == "":
        return LocalArtifactStore(Path(url).expanduser().resolve())
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return LocalArtifactStore(Path(parts.path).resolve())
    if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
        return S3ArtifactStore(parts.netloc, parts.path.strip("/"))
    raise ValueError(
        f"ARTIFACT_STORE must be a local directory, file:///<absolute path> or s3://<bucket>[/<prefix>]; got {url!r}"
    )
