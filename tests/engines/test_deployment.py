"""The engine deployment's own logic (adapter loading, error mapping, stats) with the engine and Serve's
multiplexing injected; the e2e suite runs it on vLLM inside Serve."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from vllm.lora.request import LoRARequest

from engines.adapter_cache import AdapterCache, manifest_key, publish_adapter
from engines.adapters import Adapter
from engines.artifacts import LocalArtifactStore
from engines.config import EngineConfig
from engines.deployment import AdapterLoader, EngineDeployment
from engines.errors import AdapterLoadError
from engines.protocol import ChoiceDelta, GenerateChunk, GenerateRequest, SamplingOptions

CONFIG = EngineConfig(
    model_id="base", model_path="/m", max_model_len=64, dtype="auto", device="cpu", cpu_binding=False,
    park_while_training=False, max_cpu_loras=2,
)  # fmt: skip


class FakeLLM:
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.refuse: set[str] = set()
        self.removed: list[int] = []

    async def add_lora(self, lora: LoRARequest) -> None:
        if lora.lora_name in self.refuse:
            raise ValueError("the adapter's rank is too large")
        self.loaded.append(lora.lora_name)

    async def list_loras(self) -> set[int]:
        return set(range(len(self.loaded)))

    async def remove_lora(self, lora_id: int) -> bool:
        self.removed.append(lora_id)
        return True


class FakeChatEngine:
    def __init__(self) -> None:
        self.llm = FakeLLM()
        self.running = 0
        self.aborted = 0
        self.loras: list[LoRARequest | None] = []

    async def generate(self, request: GenerateRequest, lora: LoRARequest | None = None) -> AsyncIterator[GenerateChunk]:
        self.loras.append(lora)
        yield GenerateChunk(prompt_tokens=1, choices=[ChoiceDelta(index=0, text="ok", tokens=1, finish_reason="stop")])

    async def check_health(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def lru(capacity: int):
    """Serve's multiplexing without a replica: the least recently used adapter is evicted."""

    def wrap(load: AdapterLoader) -> AdapterLoader:
        cache: OrderedDict[str, Any] = OrderedDict()

        async def cached(name: str) -> LoRARequest:
            if name not in cache:
                cache[name] = await load(name)
                while len(cache) > capacity:
                    cache.popitem(last=False)
            cache.move_to_end(name)
            return cache[name]

        return cached

    return wrap


@pytest.fixture
def deployment() -> EngineDeployment:
    return EngineDeployment(CONFIG, start_engine=lambda config: FakeChatEngine(), multiplex=lru)  # type: ignore[arg-type,return-value]


def request(adapter: str | None) -> GenerateRequest:
    found = Adapter(name=adapter, path=f"/adapters/{adapter}", parent="base", created=1) if adapter else None
    return GenerateRequest(request_id="r", messages=[], sampling=SamplingOptions(), adapter=found)


async def generate(deployment: EngineDeployment, adapter: str | None) -> list[GenerateChunk]:
    return [chunk async for chunk in deployment.generate(request(adapter))]


async def test_adapters_load_once_and_keep_their_ids(deployment: EngineDeployment) -> None:
    engine: FakeChatEngine = deployment.engine  # type: ignore[assignment]
    for adapter in ("a", "a", None, "b", "a"):
        assert len(await generate(deployment, adapter)) == 1
    assert engine.llm.loaded == ["a", "b"]
    assert engine.loras[2] is None  # the base model's request names no adapter
    first, again = engine.loras[0], engine.loras[4]
    assert first is not None and again is not None and first.lora_int_id == again.lora_int_id
    assert first.lora_path == "/adapters/a"
    await generate(deployment, "c")  # over capacity: "b" is evicted, then loaded again with its own id
    await generate(deployment, "b")
    assert engine.llm.loaded == ["a", "b", "c", "b"]
    assert engine.loras[-1].lora_int_id == engine.loras[3].lora_int_id  # type: ignore[union-attr]


async def test_an_adapter_that_cannot_load_is_a_clear_400(deployment: EngineDeployment) -> None:
    engine: FakeChatEngine = deployment.engine  # type: ignore[assignment]
    engine.llm.refuse.add("bad")
    with pytest.raises(AdapterLoadError) as failure:
        await generate(deployment, "bad")
    assert failure.value.status_code == 400 and failure.value.code == "adapter_load_failed"
    assert failure.value.param == "model" and "rank is too large" in failure.value.message
    engine.llm.refuse.clear()
    assert len(await generate(deployment, "bad")) == 1  # a failed load is not cached


async def test_stats(deployment: EngineDeployment) -> None:
    await generate(deployment, "a")
    stats = await deployment.stats()
    assert stats["adapters_loaded"] == 1 and stats["parked"] is False


def published(store: LocalArtifactStore, tmp_path: Path, name: str, weights: bytes) -> Adapter:
    folder = tmp_path / "trained" / weights.hex()
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    digest = publish_adapter(store, folder)
    return Adapter(name=name, path=str(folder), parent="base", created=1, digest=digest)


async def generate_with(deployment: EngineDeployment, adapter: Adapter) -> None:
    request = GenerateRequest(request_id="r", messages=[], sampling=SamplingOptions(), adapter=adapter)
    assert [chunk async for chunk in deployment.generate(request)]


def with_artifact_store(tmp_path: Path) -> tuple[LocalArtifactStore, EngineDeployment]:
    """A deployment that takes published adapters from a local artifact store into a node cache."""
    config = msgspec.structs.replace(
        CONFIG, artifact_default_root=str(tmp_path / "store"), adapter_cache_dir=str(tmp_path / "node-cache")
    )
    deployment = EngineDeployment(config, start_engine=lambda config: FakeChatEngine(), multiplex=lru)  # type: ignore[arg-type,return-value]
    return LocalArtifactStore(tmp_path / "store"), deployment


async def test_published_adapters_load_from_the_store_by_digest(tmp_path: Path) -> None:
    store, deployment = with_artifact_store(tmp_path)
    engine: FakeChatEngine = deployment.engine  # type: ignore[assignment]
    first = published(store, tmp_path, "ft:m", b"one")
    await generate_with(deployment, first)
    loaded = engine.loras[-1]
    assert first.digest and loaded is not None and loaded.lora_path == str(tmp_path / "node-cache" / first.digest)
    # The same name published again with other weights is loaded anew, never served from the old copy.
    again = published(store, tmp_path, "ft:m", b"two")
    await generate_with(deployment, again)
    reloaded = engine.loras[-1]
    assert again.digest and reloaded is not None and reloaded.lora_path == str(tmp_path / "node-cache" / again.digest)
    assert reloaded.lora_int_id != loaded.lora_int_id


async def test_adapters_whose_weights_left_the_store_leave_the_engine_and_the_node(tmp_path: Path) -> None:
    store, deployment = with_artifact_store(tmp_path)
    engine: FakeChatEngine = deployment.engine  # type: ignore[assignment]
    kept, deleted = published(store, tmp_path, "ft:kept", b"one"), published(store, tmp_path, "ft:gone", b"two")
    await generate_with(deployment, kept)
    await generate_with(deployment, deleted)
    cache = AdapterCache(store, tmp_path / "node-cache")
    assert deleted.digest and kept.digest
    assert await deployment.drop_deleted_adapters(cache) == []

    store.delete(manifest_key(deleted.digest))
    store.delete_prefix(f"adapters/{deleted.digest}/")

    assert await deployment.drop_deleted_adapters(cache) == [deleted.serving_id]
    gone_id = engine.loras[-1].lora_int_id  # type: ignore[union-attr]
    assert engine.llm.removed == [gone_id]
    assert not (tmp_path / "node-cache" / deleted.digest).exists() and (tmp_path / "node-cache" / kept.digest).is_dir()
    assert await deployment.drop_deleted_adapters(cache) == []
