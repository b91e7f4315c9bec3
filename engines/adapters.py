"""The adapter registry: which LoRA adapter model names exist and where their PEFT directories are.

Admin-placed adapters are the folders `DATA_DIR/adapters/<name>/`; other sources (fine-tuned models)
add theirs through `extra_sources`. A folder is served only once it is a complete, servable adapter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger("engines.adapters")

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,255}$")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class AdapterInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    path: str
    parent: str
    created: int
    owned_by: str = "system"
    rank: int = 0


class AdapterError(ValueError):
    """A folder is not a servable adapter for this engine."""


def inspect_adapter(path: Path, *, max_lora_rank: int) -> int:
    """Checks that `path` holds a complete PEFT LoRA adapter the engine can serve; returns its rank."""
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterError(f"{path} has no adapter_config.json")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise AdapterError(f"{path} has no adapter weights ({' or '.join(WEIGHT_FILES)})")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{config_file} is not valid JSON: {exc}") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{path} is a {config.get('peft_type')} adapter; only LoRA adapters are served")
    rank = int(config.get("r", 0))
    if not 0 < rank <= max_lora_rank:
        raise AdapterError(f"{path} has LoRA rank {rank}; the engine serves ranks up to MAX_LORA_RANK={max_lora_rank}")
    return rank


class AdapterRegistry:
    """Resolves model names to adapters. Folder scans are cached until the folder changes."""

    def __init__(
        self,
        adapters_dir: Path,
        *,
        base_model_id: str,
        max_lora_rank: int,
        extra_sources: Iterable[Callable[[], Iterable[AdapterInfo]]] = (),
    ) -> None:
        self.adapters_dir = adapters_dir
        self.base_model_id = base_model_id
        self.max_lora_rank = max_lora_rank
        self.extra_sources = list(extra_sources)
        self._scanned_at: float | None = None
        self._placed: dict[str, AdapterInfo] = {}
        self._rejected: set[str] = set()

    def add_source(self, source: Callable[[], Iterable[AdapterInfo]]) -> None:
        self.extra_sources.append(source)

    def all(self) -> list[AdapterInfo]:
        adapters = dict(self._scan())
        for source in self.extra_sources:
            adapters.update({info.name: info for info in source()})
        return sorted(adapters.values(), key=lambda info: (info.created, info.name))

    def get(self, name: str) -> AdapterInfo | None:
        return next((info for info in self.all() if info.name == name), None)

    def _scan(self) -> dict[str, AdapterInfo]:
        try:
            mtime = self.adapters_dir.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime == self._scanned_at:
            return self._placed
        placed = {}
        for folder in sorted(self.adapters_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            info = self._placed_adapter(folder)
            if info is not None:
                placed[info.name] = info
        self._placed, self._scanned_at = placed, mtime
        return placed

    def _placed_adapter(self, folder: Path) -> AdapterInfo | None:
        try:
            if not ADAPTER_NAME.match(folder.name):
                raise AdapterError(f"{folder.name!r} is not a valid model name")
            rank = inspect_adapter(folder, max_lora_rank=self.max_lora_rank)
        except AdapterError as exc:
            if folder.name not in self._rejected:
                self._rejected.add(folder.name)
                log.warning("adapter_skipped", folder=str(folder), reason=str(exc))
            return None
        return AdapterInfo(
            name=folder.name,
            path=str(folder.resolve()),
            parent=self.base_model_id,
            created=int(folder.stat().st_mtime),
            rank=rank,
        )
