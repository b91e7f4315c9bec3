"""The adapter registry: which LoRA adapter model names exist and where their PEFT directories are.

Admin-placed adapters are the folders `DATA_DIR/adapters/<name>/`; other sources (fine-tuned models)
add theirs through `sources`. A folder is served only once it is a complete, servable adapter."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger("engines.adapters")

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,255}$")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


SHARED_OWNER = "system"
"""The owner of admin-placed adapters (and the base model), which every caller may use."""


class Adapter(msgspec.Struct, frozen=True, kw_only=True):
    """A LoRA adapter served as a model: admin-placed, or a fine-tuned model or checkpoint. The gateway
    resolves a model name to it; the engine loads it by `digest` from the artifact store when it has one,
    else from `path`; the metadata store keeps the published ones."""

    name: str
    path: str
    """The local PEFT directory (adapter_config.json and the weights)."""
    parent: str
    """The base model it adapts."""
    created: int
    owner: str = SHARED_OWNER
    job_id: str | None = None
    """The fine-tuning job that made it, for fine-tuned models and checkpoints."""
    digest: str | None = None
    """Its content digest in the artifact store, where any node's engine loads it from; None for a folder an
    admin placed on this node, loaded from `path`."""

    @property
    def serving_id(self) -> str:
        """What an engine caches it under: a re-published name with new weights is a new id, never stale."""
        return f"{self.name}@{self.digest[:16]}" if self.digest else self.name

    def visible_to(self, caller: str) -> bool:
        return self.owner in (SHARED_OWNER, caller)


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
    """Resolves model names to adapters: admin-placed folders and the `sources` (fine-tuned models in the
    store). A snapshot is built in a worker thread, since it touches disk and the store. Listing always
    builds a fresh one; a look-up by name, which every adapter request makes, reads the snapshot and builds
    a new one only when it is older than `max_age_s`, after `invalidate()` (a model was published or
    deleted here), or when the name is missing (another process may have published it)."""

    def __init__(
        self,
        adapters_dir: Path,
        *,
        base_model_id: str,
        max_lora_rank: int,
        sources: Iterable[Callable[[], Iterable[Adapter]]] = (),
        max_age_s: float = 5.0,
    ) -> None:
        self.adapters_dir = adapters_dir
        self.base_model_id = base_model_id
        self.max_lora_rank = max_lora_rank
        self.sources = list(sources)
        self.max_age_s = max_age_s
        self._snapshot: dict[str, Adapter] = {}
        self._taken_at = -math.inf
        self._generation = 0
        self._refreshing = asyncio.Lock()
        self._scanned_mtime: float | None = None
        self._placed: dict[str, Adapter] = {}
        self._rejected: set[str] = set()

    def invalidate(self) -> None:
        self._taken_at = -math.inf

    async def all(self) -> list[Adapter]:
        await self._refresh()
        return sorted(self._snapshot.values(), key=lambda adapter: (adapter.created, adapter.name))

    async def get(self, name: str) -> Adapter | None:
        if name not in self._snapshot or time.monotonic() - self._taken_at > self.max_age_s:
            await self._refresh()
        return self._snapshot.get(name)

    async def _refresh(self) -> None:
        """One refresh at a time; callers that waited for a running one use its result."""
        seen = self._generation
        async with self._refreshing:
            if self._generation == seen:
                taken_at = time.monotonic()
                self._snapshot = await asyncio.to_thread(self._collect)
                self._taken_at, self._generation = taken_at, self._generation + 1

    def _collect(self) -> dict[str, Adapter]:
        adapters = dict(self._scan())
        for source in self.sources:
            adapters.update({adapter.name: adapter for adapter in source()})
        return adapters

    def _scan(self) -> dict[str, Adapter]:
        try:
            mtime = self.adapters_dir.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime == self._scanned_mtime:
            return self._placed
        placed = {}
        for folder in sorted(self.adapters_dir.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            adapter = self._placed_adapter(folder)
            if adapter is not None:
                placed[adapter.name] = adapter
        self._placed, self._scanned_mtime = placed, mtime
        return placed

    def _placed_adapter(self, folder: Path) -> Adapter | None:
        try:
            if not ADAPTER_NAME.match(folder.name):
                raise AdapterError(f"{folder.name!r} is not a valid model name")
            inspect_adapter(folder, max_lora_rank=self.max_lora_rank)
        except AdapterError as exc:
            if folder.name not in self._rejected:
                self._rejected.add(folder.name)
                log.warning("adapter_skipped", folder=str(folder), reason=str(exc))
            return None
        return Adapter(
            name=folder.name, path=str(folder.resolve()), parent=self.base_model_id, created=int(folder.stat().st_mtime)
        )
