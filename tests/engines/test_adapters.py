from __future__ import annotations

import json
from pathlib import Path

from engines.adapters import Adapter, AdapterRegistry


def place(root: Path, name: str, *, rank: int = 8, weights: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"0")
    return folder


async def test_placed_adapters_are_served_and_incomplete_ones_are_not(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path, base_model_id="base", max_lora_rank=16)
    place(tmp_path, "good")
    place(tmp_path, "too-big", rank=64)
    place(tmp_path, "half-copied", weights=False)
    (tmp_path / ".staging").mkdir()
    assert [adapter.name for adapter in await registry.all()] == ["good"]
    adapter = await registry.get("good")
    assert adapter is not None and adapter.parent == "base" and adapter.owner == "system"
    assert await registry.get("too-big") is None


async def test_a_missing_name_is_looked_up_again(tmp_path: Path) -> None:
    """Another process may have published it since the snapshot was taken."""
    registry = AdapterRegistry(tmp_path, base_model_id="base", max_lora_rank=16, max_age_s=3600)
    assert await registry.all() == []
    place(tmp_path, "later")
    assert await registry.get("later") is not None


async def test_sources_are_read_once_until_invalidated(tmp_path: Path) -> None:
    published = [Adapter(name="ft:base:local::ftjob-1", path="/x", parent="base", created=5, owner="local")]
    reads = []

    def source() -> list[Adapter]:
        reads.append(1)
        return list(published)

    registry = AdapterRegistry(tmp_path / "missing", base_model_id="base", max_lora_rank=16, sources=[source])
    for _ in range(3):
        assert await registry.get(published[0].name) == published[0]
    assert len(reads) == 1
    published.append(Adapter(name="ft:base:local::ftjob-2", path="/y", parent="base", created=6, owner="local"))
    assert await registry.get("ft:base:local::ftjob-1") is not None
    assert len(reads) == 1  # still the snapshot
    gone = published.pop(0)
    registry.invalidate()
    assert await registry.get(gone.name) is None
    assert len(reads) == 2


async def test_listing_is_always_fresh(tmp_path: Path) -> None:
    """An adapter folder placed at run time is listed at once."""
    registry = AdapterRegistry(tmp_path, base_model_id="base", max_lora_rank=16, max_age_s=3600)
    assert await registry.get("x") is None
    place(tmp_path, "now")
    assert [adapter.name for adapter in await registry.all()] == ["now"]
