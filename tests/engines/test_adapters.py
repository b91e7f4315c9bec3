from __future__ import annotations

import json
from pathlib import Path

from engines.adapters import AdapterInfo, AdapterRegistry


def place(root: Path, name: str, *, rank: int = 8, weights: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"0")
    return folder


def test_placed_adapters_are_served_and_incomplete_ones_are_not(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path, base_model_id="base", max_lora_rank=16)
    place(tmp_path, "good")
    place(tmp_path, "too-big", rank=64)
    place(tmp_path, "half-copied", weights=False)
    (tmp_path / ".staging").mkdir()
    assert [info.name for info in registry.all()] == ["good"]
    info = registry.get("good")
    assert info is not None and info.parent == "base" and info.rank == 8
    assert registry.get("too-big") is None


def test_new_folders_appear_without_restart(tmp_path: Path) -> None:
    registry = AdapterRegistry(tmp_path, base_model_id="base", max_lora_rank=16)
    assert registry.all() == []
    place(tmp_path, "later")
    assert registry.get("later") is not None


def test_extra_sources(tmp_path: Path) -> None:
    extra = AdapterInfo(name="ft:base:local::ftjob-1", path="/x", parent="base", created=5, owned_by="local")
    registry = AdapterRegistry(tmp_path / "missing", base_model_id="base", max_lora_rank=16, extra_sources=[lambda: [extra]])
    assert registry.get(extra.name) == extra
