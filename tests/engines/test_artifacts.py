"""The artifact store's contract, run against both backends (a local directory; S3 on a moto server the tests start on
loopback, with dummy credentials), and the content-addressed adapter cache built on it."""

from __future__ import annotations

import builtins
import json
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

import engines.artifacts
from engines.adapter_cache import AdapterCache, adapter_digest, file_key, manifest_key, publish_adapter
from engines.artifacts import (
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_store_from_url,
)
from engines.core.errors import NotFoundError, PlatformError, ServiceUnavailableError

# --- backends -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread of this process, bound to loopback only, on a free port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Points boto3, through the variables it reads itself, at moto with dummy credentials: never at real AWS.
    Processes the tests spawn inherit it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return moto_endpoint


def new_bucket() -> str:
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An `ARTIFACT_STORE` value for each backend; S3 gets a fresh bucket and a prefix inside it."""
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("aws_env")
    return f"s3://{new_bucket()}/platform/artifacts"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> ArtifactStore:
    return artifact_store_from_url(store_url, default_root=tmp_path / "unused")


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


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


# --- the store's contract -------------------------------------------------------------------------------------------


def test_objects_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("files/file-1", b"hello")
    assert store.get_bytes("files/file-1") == b"hello"
    store.put_bytes("files/file-1", b"replaced")
    assert store.get_bytes("files/file-1") == b"replaced"
    assert store.exists("files/file-1") and not store.exists("files/file-2") and not store.exists("files")

    # Over boto3's 8 MiB multipart threshold, so S3 takes the multipart path.
    large = os.urandom(9 * 2**20)
    (tmp_path / "large.bin").write_bytes(large)
    store.put_file("checkpoints/ckpt-1/model.bin", tmp_path / "large.bin")
    store.get_file("checkpoints/ckpt-1/model.bin", tmp_path / "new" / "folders" / "copy.bin")
    assert (tmp_path / "new" / "folders" / "copy.bin").read_bytes() == large
    assert store.get_bytes("checkpoints/ckpt-1/model.bin") == large


def test_a_missing_key_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="'files/nope' does not exist") as raised:
        store.get_bytes("files/nope")
    assert raised.value.status_code == 404
    with pytest.raises(NotFoundError):
        store.get_file("files/nope", tmp_path / "target")
    assert not (tmp_path / "target").exists()
    assert not store.exists("files/nope")
    store.delete("files/nope")  # deleting what is gone is not an error: cleanups can be retried


def test_listing_and_deleting_by_prefix(store: ArtifactStore) -> None:
    for key in ("a/1", "a/2", "a/sub/3", "ab/4", "b"):
        store.put_bytes(key, key.encode())
    assert store.list() == ["a/1", "a/2", "a/sub/3", "ab/4", "b"]
    assert store.list("a") == store.list("a/") == ["a/1", "a/2", "a/sub/3"]  # a folder: not ab/4
    assert store.list("a/sub") == ["a/sub/3"]
    assert store.list("nothing") == []
    assert store.delete_prefix("a") == 3
    assert store.list() == ["ab/4", "b"]
    store.delete("b")
    assert store.list() == ["ab/4"]
    assert store.delete_prefix("nothing") == 0
    with pytest.raises(ValueError, match="non-empty prefix"):
        store.delete_prefix("")
    assert store.list() == ["ab/4"]


BAD_KEYS = ["", "/etc/passwd", "../outside", "a/../../b", "a//b", "a/", "./a", ".hidden", "a/.partial", "a\\b", "a\0b"]


@pytest.mark.parametrize("key", [*BAD_KEYS, "k" * 1025])
def test_keys_are_relative_paths_of_visible_names(store: ArtifactStore, key: str, tmp_path: Path) -> None:
    (tmp_path / "source").write_bytes(b"x")
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_file(key, tmp_path / "source"),
        lambda: store.get_bytes(key),
        lambda: store.get_file(key, tmp_path / "target"),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ValueError, match="artifact key"):
            call()
    assert store.list() == []
    assert not (tmp_path / "target").exists() and not (tmp_path / "outside").exists()


def test_a_failed_local_write_is_never_visible(
    local_store: LocalArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new bytes are all written, just not yet durable, when the write fails: neither they nor the temporary
    file may show, and the old object stays whole."""
    local_store.put_bytes("files/kept", b"old")
    (tmp_path / "source").write_bytes(b"new bytes")
    seen_during_write = []

    def failing_fsync(fd: int) -> None:
        seen_during_write.append((local_store.get_bytes("files/kept"), local_store.exists("files/fresh")))
        raise OSError("the disk went away")

    monkeypatch.setattr(engines.artifacts.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk went away"):
        local_store.put_bytes("files/kept", b"new")
    with pytest.raises(OSError, match="disk went away"):
        local_store.put_file("files/fresh", tmp_path / "source")
    monkeypatch.undo()

    assert seen_during_write == [(b"old", False), (b"old", False)]
    assert local_store.get_bytes("files/kept") == b"old"
    assert not local_store.exists("files/fresh")
    assert [path.name for path in local_store.root.rglob("*") if path.is_file()] == ["kept"]  # no partial file left


def test_stores_sharing_a_bucket_keep_to_their_prefixes(aws_env: str, tmp_path: Path) -> None:
    bucket = new_bucket()
    one = artifact_store_from_url(f"s3://{bucket}/one", default_root=tmp_path)
    two = artifact_store_from_url(f"s3://{bucket}/two/", default_root=tmp_path)
    one.put_bytes("files/k", b"1")
    assert one.list() == ["files/k"] and two.list() == []
    assert not two.exists("files/k")
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["one/files/k"]


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_unreachable_store_is_unavailable() -> None:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_loopback_port()}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2),
    )
    store = S3ArtifactStore("bucket", "prefix", client=client)
    for call in (lambda: store.get_bytes("k"), lambda: store.put_bytes("k", b"x"), store.list, lambda: store.exists("k")):
        with pytest.raises(ServiceUnavailableError, match="cannot be reached") as raised:
            call()
        assert raised.value.status_code == 503 and "Retry-After" in raised.value.headers


def test_a_missing_bucket_is_a_server_error_not_a_missing_key(aws_env: str, tmp_path: Path) -> None:
    store = artifact_store_from_url("s3://no-such-bucket-here/prefix", default_root=tmp_path)
    with pytest.raises(PlatformError, match="NoSuchBucket") as raised:
        store.put_bytes("k", b"x")
    assert type(raised.value) is PlatformError and raised.value.status_code == 500


@pytest.mark.parametrize("url", ["", "{tmp}/relative/../store", "file://{tmp}/store", "file://localhost{tmp}/store"])
def test_local_store_urls(url: str, tmp_path: Path) -> None:
    store = artifact_store_from_url(url.format(tmp=tmp_path), default_root=tmp_path / "default")
    assert isinstance(store, LocalArtifactStore)
    assert store.root == (tmp_path / "default" if not url else tmp_path / "store")
    assert store.root.is_dir()


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bucket", "bucket", ""), ("s3://bucket/", "bucket", ""), ("s3://bucket/a/b/", "bucket", "a/b")],
)
def test_s3_store_urls(url: str, bucket: str, prefix: str, aws_env: str, tmp_path: Path) -> None:
    store = artifact_store_from_url(url, default_root=tmp_path)
    assert isinstance(store, S3ArtifactStore)
    assert (store.bucket, store.prefix) == (bucket, prefix)


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3://", "s3:///prefix", "http://minio:9000/bucket", "file://host/x"])
def test_other_store_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ARTIFACT_STORE must be a local directory, file:///<absolute path> or s3://"):
        artifact_store_from_url(url, default_root=tmp_path)


# --- adapters ---------------------------------------------------------------------------------------------------------


def make_adapter(folder: Path, weights: bytes = b"weights-v1" * 1000) -> Path:
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "tokenizer" / "special_tokens.json").write_text("{}")
    return folder


def test_the_digest_is_the_content(tmp_path: Path) -> None:
    first = adapter_digest(make_adapter(tmp_path / "a"))
    assert adapter_digest(make_adapter(tmp_path / "elsewhere" / "b")) == first  # name and place do not count
    (tmp_path / "a" / ".cache").mkdir()
    (tmp_path / "a" / ".cache" / "download.lock").write_text("tool state")
    assert adapter_digest(tmp_path / "a") == first  # nor do hidden files
    assert adapter_digest(make_adapter(tmp_path / "c", weights=b"weights-v2" * 1000)) != first
    moved = tmp_path / "elsewhere" / "b" / "tokenizer"
    (moved / "special_tokens.json").rename(moved / "renamed.json")
    assert adapter_digest(tmp_path / "elsewhere" / "b") != first  # a file's path is content
    with pytest.raises(ValueError, match=r"no adapter_config\.json"):
        adapter_digest(tmp_path)


def test_publishing_writes_the_manifest_last_and_once(store: ArtifactStore, tmp_path: Path) -> None:
    observed = ObservedStore(store)
    digest = publish_adapter(observed, make_adapter(tmp_path / "adapter"))
    assert digest == adapter_digest(tmp_path / "adapter")
    files = ["adapter_config.json", "adapter_model.safetensors", "tokenizer/special_tokens.json"]
    assert observed.puts == [*(file_key(digest, name) for name in files), manifest_key(digest)]
    manifest = json.loads(store.get_bytes(manifest_key(digest)))
    assert manifest["digest"] == digest
    sizes = [(name, (tmp_path / "adapter" / name).stat().st_size) for name in files]
    assert [(file["path"], file["size"]) for file in manifest["files"]] == sizes
    observed.puts.clear()
    assert publish_adapter(observed, tmp_path / "adapter") == digest
    assert observed.puts == []  # already published: nothing uploaded again


class CrashingStore(ObservedStore):
    """Dies just before the manifest is written, as a publisher killed midway would."""

    def put_bytes(self, key: str, data: bytes) -> None:
        if key.endswith("/manifest.json"):
            raise KeyboardInterrupt("killed")
        super().put_bytes(key, data)


def test_a_half_published_adapter_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    with pytest.raises(KeyboardInterrupt):
        publish_adapter(CrashingStore(store), adapter)
    digest = adapter_digest(adapter)
    assert len(store.list(f"adapters/{digest}")) == 3  # every file is there, but no manifest
    cache = AdapterCache(store, tmp_path / "cache")
    with pytest.raises(NotFoundError, match=f"adapter {digest} is not in the artifact store"):
        cache.materialize(digest)
    assert not (tmp_path / "cache" / digest).exists()
    assert publish_adapter(store, adapter) == digest  # publishing again completes it
    assert (cache.materialize(digest) / "adapter_model.safetensors").read_bytes() == b"weights-v1" * 1000


def test_an_adapter_is_downloaded_once_per_node(store: ArtifactStore, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    digest = publish_adapter(store, adapter)
    observed = ObservedStore(store)
    path = AdapterCache(observed, tmp_path / "cache").materialize(digest)
    assert path == tmp_path / "cache" / digest
    assert len(observed.downloads) == 3
    assert adapter_digest(path) == digest
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer/special_tokens.json"):
        assert (path / name).read_bytes() == (adapter / name).read_bytes()
    # Another replica on the node (another cache object, as in another process) finds it in place.
    assert AdapterCache(observed, tmp_path / "cache").materialize(digest) == path
    assert len(observed.downloads) == 3
    assert sorted(entry.name for entry in (tmp_path / "cache").iterdir()) == [f".{digest}.lock", digest]


def test_a_republished_name_never_serves_stale_weights(store: ArtifactStore, tmp_path: Path) -> None:
    """The same model name published again with new weights: a new digest, so a new cache entry."""
    cache = AdapterCache(store, tmp_path / "cache")
    adapter = make_adapter(tmp_path / "ft-model")
    old = cache.materialize(publish_adapter(store, adapter))
    make_adapter(tmp_path / "ft-model", weights=b"weights-v2" * 1000)
    new = cache.materialize(publish_adapter(store, adapter))
    assert new != old
    assert (new / "adapter_model.safetensors").read_bytes() == b"weights-v2" * 1000
    assert (old / "adapter_model.safetensors").read_bytes() == b"weights-v1" * 1000


def corrupt(store: ArtifactStore, digest: str, how: str) -> None:
    weights = file_key(digest, "adapter_model.safetensors")
    if how == "same-size bytes":
        store.put_bytes(weights, b"X" + store.get_bytes(weights)[1:])
    elif how == "missing file":
        store.delete(weights)
    elif how == "manifest for other content":
        manifest = json.loads(store.get_bytes(manifest_key(digest)))
        manifest["files"][1]["sha256"] = "0" * 64
        store.put_bytes(manifest_key(digest), json.dumps(manifest).encode())
    elif how == "escaping manifest path":
        manifest = json.loads(store.get_bytes(manifest_key(digest)))
        manifest["files"][0]["path"] = "../../outside"
        store.put_bytes(manifest_key(digest), json.dumps(manifest).encode())
    else:
        store.put_bytes(manifest_key(digest), b"{not json")


@pytest.mark.parametrize(
    "how", ["same-size bytes", "missing file", "manifest for other content", "escaping manifest path", "garbage manifest"]
)
def test_a_corrupt_adapter_is_rejected_and_not_cached(store: ArtifactStore, tmp_path: Path, how: str) -> None:
    adapter = make_adapter(tmp_path / "adapter")
    digest = publish_adapter(store, adapter)
    corrupt(store, digest, how)
    cache = AdapterCache(store, tmp_path / "cache")
    with pytest.raises(PlatformError, match=f"adapter {digest} in the artifact store is corrupt") as raised:
        cache.materialize(digest)
    assert raised.value.code == "adapter_corrupt" and raised.value.status_code == 500
    assert [entry.name for entry in (tmp_path / "cache").iterdir()] == [f".{digest}.lock"]  # no copy, no staging
    assert not (tmp_path / "outside").exists()

    # Once the store is repaired, the next call downloads the good bytes.
    assert store.delete_prefix(f"adapters/{digest}") > 0
    publish_adapter(store, adapter)
    assert adapter_digest(cache.materialize(digest)) == digest


def test_two_threads_download_once(store: ArtifactStore, tmp_path: Path) -> None:
    digest = publish_adapter(store, make_adapter(tmp_path / "adapter"))
    observed = ObservedStore(store, delay_s=0.2)
    start = threading.Barrier(2)

    def replica() -> Path:
        start.wait()
        return AdapterCache(observed, tmp_path / "cache").materialize(digest)

    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: replica(), range(2)))
    assert paths == [tmp_path / "cache" / digest] * 2
    assert len(observed.downloads) == 3


def materialize_in_child(store_url: str, cache_dir: Path, digest: str, log: Path, start: ProcessBarrier) -> None:
    """A replica process: its own store client and cache object, the node's cache folder."""
    store = artifact_store_from_url(store_url, default_root=cache_dir / "unused")
    start.wait()
    path = AdapterCache(ObservedStore(store, delay_s=0.3, download_log=log), cache_dir).materialize(digest)
    assert adapter_digest(path) == digest


def test_two_processes_download_once(store_url: str, store: ArtifactStore, tmp_path: Path) -> None:
    digest = publish_adapter(store, make_adapter(tmp_path / "adapter"))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a replica is: no forked moto thread
    start = context.Barrier(2)
    log = tmp_path / "downloads.log"
    processes = [
        context.Process(target=materialize_in_child, args=(store_url, tmp_path / "cache", digest, log, start))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    assert len(log.read_text().splitlines()) == 3


def test_a_killed_download_leaves_nothing_behind(local_store: LocalArtifactStore, tmp_path: Path) -> None:
    digest = publish_adapter(local_store, make_adapter(tmp_path / "adapter"))
    leftover = tmp_path / "cache" / f".{digest}.x1y2.partial"
    leftover.mkdir(parents=True)
    (leftover / "adapter_model.safetensors").write_bytes(b"half")
    AdapterCache(local_store, tmp_path / "cache").materialize(digest)
    assert not leftover.exists()


@pytest.mark.parametrize("digest", ["../../etc", "A" * 64, "abc", ""])
def test_a_digest_is_checked_before_it_becomes_a_path(local_store: LocalArtifactStore, tmp_path: Path, digest: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        AdapterCache(local_store, tmp_path / "cache").materialize(digest)
