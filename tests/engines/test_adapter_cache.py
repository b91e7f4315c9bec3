"""The content-addressed adapter cache, over both artifact store backends: publication with the manifest last,
one download per node, stale weights never served, corrupt copies refused."""

from __future__ import annotations

import json
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path

import pytest

from engines.adapter_cache import AdapterCache, adapter_digest, file_key, manifest_key, publish_adapter
from engines.artifacts import (
    ArtifactStore,
    LocalArtifactStore,
    artifact_store_from_url,
)
from engines.core.errors import NotFoundError, PlatformError
from tests.engines.stores import ObservedStore


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
