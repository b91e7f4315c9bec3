"""Adapters in the artifact store, addressed by content, and their node-local cache.

An adapter (a PEFT directory: adapter_config.json, the weights, maybe more) is published under its digest:
its files to `adapters/<digest>/files/...`, then, last, `adapters/<digest>/manifest.json`. A reader trusts a
digest only once its manifest exists, so a half-published adapter is never served. An engine replica copies
it into `cache_dir/<digest>/` once per node: the key is the content, never a model name, so a name published
again with new weights resolves to a new digest and cannot serve the old ones."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog

from engines.artifacts import ArtifactStore, fsync_directory, validate_key
from engines.core.errors import NotFoundError, PlatformError

log = structlog.get_logger("engines.adapter_cache")

ADAPTERS_PREFIX = "adapters"
MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "adapter_config.json"
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class AdapterFile(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    """Relative posix path inside the adapter directory."""
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class AdapterManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a published adapter holds; written after its files, so its presence means they are all there."""

    digest: str
    files: list[AdapterFile]
    """Sorted by path."""


def manifest_key(digest: str) -> str:
    return f"{ADAPTERS_PREFIX}/{digest}/{MANIFEST_NAME}"


def file_key(digest: str, path: str) -> str:
    """Files sit apart from the manifest, so an adapter file named manifest.json cannot take its place."""
    return f"{ADAPTERS_PREFIX}/{digest}/files/{path}"


def file_hash(path: Path) -> tuple[int, str]:
    """The size and sha256 of a file, read once in chunks."""
    with path.open("rb") as file:
        sha256 = hashlib.file_digest(file, "sha256").hexdigest()
        return file.tell(), sha256


def _tree_digest(files: Iterable[AdapterFile]) -> str:
    """sha256 over each file's relative path and the sha256 of its bytes, in path order. Hashing the files' hashes
    rather than their bytes again lets a reader check a manifest against its digest before downloading anything."""
    tree = hashlib.sha256()
    for file in files:
        tree.update(file.path.encode() + b"\0" + bytes.fromhex(file.sha256))
    return tree.hexdigest()


def relative_files(root: Path) -> list[str]:
    """The adapter's files, sorted; hidden ones (tool caches such as .cache/, .gitattributes) are not part of it."""
    paths: list[str] = []
    for parent, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        relative = Path(parent).relative_to(root)
        paths.extend((relative / name).as_posix() for name in filenames if not name.startswith("."))
    return sorted(paths)


def _describe(root: Path) -> AdapterManifest:
    if not (root / CONFIG_NAME).is_file():
        raise ValueError(f"{root} is not an adapter directory: it has no {CONFIG_NAME}")
    files = []
    for path in relative_files(root):
        size, sha256 = file_hash(root / path)
        files.append(AdapterFile(path=path, size=size, sha256=sha256))
    return AdapterManifest(digest=_tree_digest(files), files=files)


def adapter_digest(path: Path) -> str:
    """The content digest of the adapter directory `path`: equal for equal files, whatever the name or location."""
    return _describe(path).digest


def published_config(store: ArtifactStore, digest: str) -> dict[str, Any]:
    """A published adapter's adapter_config.json (PEFT's LoRA settings), without downloading its weights."""
    config = msgspec.json.decode(store.get_bytes(file_key(digest, CONFIG_NAME)))
    if not isinstance(config, dict):
        raise PlatformError(f"The adapter {digest[:16]} has an unreadable {CONFIG_NAME}.")
    return config


def publish_adapter(store: ArtifactStore, local_dir: Path) -> str:
    """Uploads the adapter directory `local_dir` under its digest and returns the digest. The manifest goes last, so
    a crash midway leaves nothing a reader trusts, and publishing it again completes it. Content already published
    is not uploaded again."""
    manifest = _describe(local_dir)
    if store.exists(manifest_key(manifest.digest)):
        return manifest.digest
    for file in manifest.files:
        store.put_file(file_key(manifest.digest, file.path), local_dir / file.path)
    store.put_bytes(manifest_key(manifest.digest), msgspec.json.encode(manifest))
    log.info("adapter published", digest=manifest.digest, files=len(manifest.files))
    return manifest.digest


def _corrupt(digest: str, why: str) -> PlatformError:
    """A server-side fault (500): the client's request was fine, the store's copy is not."""
    return PlatformError(f"The adapter {digest} in the artifact store is corrupt: {why}.", code="adapter_corrupt")


def _is_valid_path(path: str) -> bool:
    try:
        validate_key(path)
    except ValueError:
        return False
    return True


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive flock on `path`. Each call opens the file anew, so it excludes threads of this process as
    well as other processes; the lock goes with the file's close, even when the process dies."""
    with path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def read_manifest(store: ArtifactStore, digest: str) -> AdapterManifest:
    """A published adapter's manifest, checked against its digest; `NotFoundError` where it is not (completely)
    published."""
    try:
        raw = store.get_bytes(manifest_key(digest))
    except NotFoundError:
        raise NotFoundError(f"The adapter {digest} is not in the artifact store.", code="adapter_not_found") from None
    try:
        manifest = msgspec.json.decode(raw, type=AdapterManifest)
    except msgspec.DecodeError as exc:
        raise _corrupt(digest, f"its manifest is not valid: {exc}") from None
    paths = [file.path for file in manifest.files]
    if paths != sorted(set(paths)) or not all(_is_valid_path(path) for path in paths):
        raise _corrupt(digest, "its manifest lists paths that are unsorted, repeated or not relative")
    if manifest.digest != digest or _tree_digest(manifest.files) != digest:
        raise _corrupt(digest, "its manifest describes other content")
    return manifest


class AdapterCache:
    """The node-local copies of published adapters: `cache_dir/<digest>/`, complete or absent. A download goes to a
    hidden staging folder, is checked file by file against the manifest, and is renamed into place; a per-digest
    lock file makes processes sharing `cache_dir` download each adapter once. Blocking: call it from a thread."""

    def __init__(self, store: ArtifactStore, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = cache_dir

    def materialize(self, digest: str) -> Path:
        """The local directory of the adapter `digest`, downloaded first if this node has no copy. `NotFoundError`
        if it is not (completely) published; a `PlatformError` with code adapter_corrupt if the store's bytes do not
        match their manifest, in which case nothing is cached."""
        if not DIGEST.match(digest):
            raise ValueError(f"An adapter digest is 64 lowercase hex digits, got {digest!r}")
        target = self.cache_dir / digest
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.cache_dir / f".{digest}.lock"):
            if target.is_dir():  # another process finished it while this one waited
                return target
            for leftover in self.cache_dir.glob(f".{digest}.*.partial"):  # of a process killed mid-download
                shutil.rmtree(leftover, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".{digest}.", suffix=".partial"))
            try:
                self._download(digest, staging)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            fsync_directory(self.cache_dir)
        return target

    def is_published(self, digest: str) -> bool:
        """Whether the store still has the adapter (its manifest): a deleted model's weights leave the store."""
        return self.store.exists(manifest_key(digest))

    def evict(self, digest: str) -> None:
        """Removes this node's copy of the adapter, if it has one."""
        if not DIGEST.match(digest):
            raise ValueError(f"An adapter digest is 64 lowercase hex digits, got {digest!r}")
        with _exclusive_lock(self.cache_dir / f".{digest}.lock"):
            shutil.rmtree(self.cache_dir / digest, ignore_errors=True)

    def _download(self, digest: str, staging: Path) -> None:
        """Downloads and checks every file into `staging`, then makes its folders durable before the rename."""
        started = time.monotonic()
        manifest = read_manifest(self.store, digest)
        for file in manifest.files:
            local = staging / file.path
            try:
                self.store.get_file(file_key(digest, file.path), local)
            except NotFoundError:
                raise _corrupt(digest, f"{file.path} is missing") from None
            size, sha256 = file_hash(local)
            if (size, sha256) != (file.size, file.sha256):
                raise _corrupt(
                    digest,
                    f"{file.path} has {size} bytes with sha256 {sha256}; "
                    f"its manifest says {file.size} bytes with sha256 {file.sha256}",
                )
        for folder, _, _ in os.walk(staging):
            fsync_directory(Path(folder))
        log.info(
            "adapter downloaded",
            digest=digest,
            bytes=sum(file.size for file in manifest.files),
            seconds=round(time.monotonic() - started, 3),
        )
