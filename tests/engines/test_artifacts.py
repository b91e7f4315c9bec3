"""The artifact store's contract, run against both backends (a local directory; S3 on a moto server the tests start on
loopback, with dummy credentials)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import engines.artifacts
from engines.artifacts import (
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_store_from_url,
)
from engines.core.errors import NotFoundError, PlatformError, ServiceUnavailableError
from tests.engines.stores import new_bucket

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
