"""The engine as a Ray Serve deployment: one ChatEngine per replica, adapters loaded on first use and
tracked by Serve's model multiplexing so requests for an adapter go to replicas that already hold it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import psutil
import ray
import structlog
from ray import serve
from ray.serve.handle import DeploymentHandle

from engines import cpu_binding
from engines.adapter_cache import AdapterCache
from engines.adapters import Adapter
from engines.artifacts import artifact_store_from_url
from engines.config import EngineConfig
from engines.core.logs import configure_logging
from engines.core.metrics import REPORT_INTERVAL_S
from engines.default_model import on_this_node
from engines.errors import AdapterLoadError
from engines.metrics import EngineMetrics
from engines.parking import EngineParking
from engines.protocol import GenerateChunk, GenerateRequest, TokenizeRequest, TokenizeResult

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest

    from engines.engine import ChatEngine

log = structlog.get_logger("engines.deployment")

DELETED_ADAPTERS_CHECK_S = 10.0
"""How often a replica asks the artifact store whether the adapters it took from there still exist."""

# vLLM (with torch) is imported only in the engine's replica, when it starts its engine: the launcher imports
# this module to deploy it, and an import of vLLM there cost the platform's start 5 s.
EngineFactory = Callable[[EngineConfig], "ChatEngine"]
AdapterLoader = Callable[[str], Awaitable["LoRARequest"]]
Multiplexer = Callable[[int], Callable[[AdapterLoader], AdapterLoader]]


def start_chat_engine(config: EngineConfig) -> ChatEngine:
    from engines.engine import ChatEngine

    return ChatEngine.start(config)


def serve_multiplexed(capacity: int) -> Callable[[AdapterLoader], AdapterLoader]:
    """Serve's model multiplexing: it caches `capacity` adapters per replica (least recently used go first)
    and reports them to Serve's router, which sends an adapter's requests to replicas that hold it."""
    return serve.multiplexed(max_num_models_per_replica=capacity)


class EngineDeployment:
    def __init__(
        self,
        config: EngineConfig,
        log_level: str = "info",
        *,
        start_engine: EngineFactory = start_chat_engine,
        multiplex: Multiplexer = serve_multiplexed,
        metrics_hub: DeploymentHandle | None = None,
    ) -> None:
        """`start_engine` and `multiplex` are injected so the deployment's own logic runs in fast tests
        without vLLM or a Serve replica around it. With `metrics_hub`, the replica reports its load to it."""
        configure_logging(log_level)
        config = msgspec.structs.replace(config, model_path=on_this_node(config.model_path))
        self.config = config
        self._start = start_engine
        self.engine = self._start_engine(config)
        self._parking: EngineParking | None = None
        if config.device == "cpu" and config.park_while_training:
            # The engine's own processes (vLLM's engine core and its worker), started just now.
            self._parking = EngineParking(psutil.Process().children(recursive=True))
        self._adapter_paths: dict[str, str] = {}
        self._digests: dict[str, str] = {}
        """The serving id of each adapter this replica took from the artifact store, and its digest there."""
        self._adapter_cache: AdapterCache | None = None
        if config.adapter_cache_dir:
            store = artifact_store_from_url(config.artifact_store, default_root=Path(config.artifact_default_root))
            self._adapter_cache = AdapterCache(store, Path(config.adapter_cache_dir))
        self._adapters_loaded = 0
        self._lora_ids: dict[str, int] = {}
        self._metrics_hub = metrics_hub
        self._metrics: EngineMetrics | None = None
        self._reporting: asyncio.Task[None] | None = None
        self._pruning: asyncio.Task[None] | None = None

        async def load_adapter(name: str) -> LoRARequest:
            return await self._add_lora(name)

        # Serve keeps its multiplexing state on the loader, so it must be a plain function, not a bound method.
        self._load_adapter = multiplex(config.max_cpu_loras)(load_adapter)

    def _start_engine(self, config: EngineConfig) -> ChatEngine:
        """On CPU, claims this replica's compute cores on its node and starts vLLM bound to them; the engine
        processes may run on every core, while this replica's own threads stay where the launcher put them."""
        # The engine's processes inherit these. Set here rather than in a Ray runtime_env, which would make Ray
        # start a fresh worker process for the replica instead of taking a prestarted one (about 3 s of start-up).
        # Ray sets OMP_NUM_THREADS=1 in its workers; vLLM's CPU binding replaces it with the bound core count.
        os.environ["OMP_NUM_THREADS"] = str(config.threads or len(cpu_binding.node_cores()))
        if config.device == "cpu":
            from engines import lora_cpu

            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(config.kv_cache_gib)
            os.environ[lora_cpu.ENABLE_ENV] = "1"  # read by the engine process's vLLM plugin
        if config.device != "cpu" or not config.cpu_binding or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
            return self._start(config)
        cores = cpu_binding.node_cores()
        self._core_slot = cpu_binding.CoreSlot.claim("engine", slots=max(config.replicas, len(cores)))
        compute = cpu_binding.replica_cores(cores, config.replicas, self._core_slot.index, config.threads)
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding.format_cores(compute)
        with cpu_binding.thread_affinity(cores):
            return self._start(config)

    def _awake(self) -> AbstractContextManager[None]:
        """Wraps every call that needs the engine's processes running."""
        return self._parking.awake() if self._parking is not None else nullcontext()

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        self._start_background_work()
        with self._awake():
            lora = await self._lora_for(request.adapter) if request.adapter is not None else None
            async for chunk in self.engine.generate(request, lora):
                yield chunk

    async def _lora_for(self, adapter: Adapter) -> LoRARequest:
        key = adapter.serving_id
        if key not in self._adapter_paths:
            self._adapter_paths[key] = await self._local_path(adapter)
        return await self._load_adapter(key)

    async def _local_path(self, adapter: Adapter) -> str:
        """A published adapter is copied from the artifact store to this node once (by digest); a placed one is
        where the admin put it."""
        if adapter.digest is None:
            return adapter.path
        self._digests[adapter.serving_id] = adapter.digest
        if self._adapter_cache is None:
            raise AdapterLoadError(
                f"The adapter model '{adapter.name}' is published in the artifact store, which this engine has not "
                "been given.",
                param="model",
                code="adapter_load_failed",
            )
        return str(await asyncio.to_thread(self._adapter_cache.materialize, adapter.digest))

    async def _add_lora(self, name: str) -> LoRARequest:
        """Serve's multiplexed loader: loads the adapter into this replica's engine now (no restart)."""
        from vllm.lora.request import LoRARequest

        lora_id = self._lora_ids.setdefault(name, len(self._lora_ids) + 1)
        lora = LoRARequest(lora_name=name, lora_int_id=lora_id, lora_path=self._adapter_paths[name])
        started = time.monotonic()
        try:
            with self._awake():
                await self.engine.llm.add_lora(lora)
        except Exception as exc:
            raise AdapterLoadError(
                f"The adapter model '{name}' could not be loaded: {exc}", param="model", code="adapter_load_failed"
            ) from None
        if self._metrics is not None:
            self._metrics.adapter_loaded(started)
        return lora

    async def tokenize(self, request: TokenizeRequest) -> TokenizeResult:
        """The tokenizer lives in this process: a parked engine need not wake."""
        return self.engine.tokenize(request)

    async def detokenize(self, tokens: list[int]) -> str:
        return self.engine.detokenize(tokens)

    async def tokenizer_info(self) -> dict[str, Any]:
        return self.engine.tokenizer_info()

    async def _count_adapters(self) -> int:
        if not (self._parking is not None and self._parking.parked):  # a probe must not wake a parked engine
            self._adapters_loaded = len(await self.engine.llm.list_loras())
        return self._adapters_loaded

    def _start_background_work(self) -> None:
        """Starts, from the replica's first call inside Serve's event loop, its reports to the metrics hub and its
        check for deleted adapters."""
        if self._adapter_cache is not None and self._pruning is None:
            self._pruning = asyncio.create_task(self._prune_loop(self._adapter_cache))
        if self._metrics_hub is None or self._reporting is not None:
            return
        replica = serve.get_replica_context().replica_id.unique_id
        self._metrics = EngineMetrics(replica, ray.util.get_node_ip_address(), self.engine.load)
        self._reporting = asyncio.create_task(self._report_loop(self._metrics_hub, self._metrics, replica))

    async def _report_loop(self, hub: DeploymentHandle, metrics: EngineMetrics, replica: str) -> None:
        while True:
            with contextlib.suppress(Exception):  # the hub being replaced only delays a report
                adapters = await self._count_adapters()
                samples = metrics.samples(adapters_loaded=adapters)
                await hub.report.remote(f"engine:{replica}", samples, counters_outlive=False)
            await asyncio.sleep(REPORT_INTERVAL_S)

    async def _prune_loop(self, cache: AdapterCache) -> None:
        while True:
            with contextlib.suppress(Exception):  # a store out of reach only delays the check
                await self.drop_deleted_adapters(cache)
            await asyncio.sleep(DELETED_ADAPTERS_CHECK_S)

    async def drop_deleted_adapters(self, cache: AdapterCache) -> list[str]:
        """Adapters whose weights left the artifact store (their models were deleted) leave this replica: the
        engine's copy and the node's. Returns their serving ids."""
        dropped = []
        for serving_id, digest in list(self._digests.items()):
            if await asyncio.to_thread(cache.is_published, digest):
                continue
            if serving_id in self._lora_ids:
                with self._awake():
                    await self.engine.llm.remove_lora(self._lora_ids[serving_id])
            del self._digests[serving_id]
            self._adapter_paths.pop(serving_id, None)
            await asyncio.to_thread(cache.evict, digest)
            dropped.append(serving_id)
        if dropped:
            log.info("deleted_adapters_dropped", adapters=dropped)
        return dropped

    async def stats(self) -> dict[str, Any]:
        await self.engine.check_health()
        parked = self._parking is not None and self._parking.parked
        await self._count_adapters()
        return {
            "running": self.engine.running,
            "aborted": self.engine.aborted,
            "adapters_loaded": self._adapters_loaded,
            "parked": parked,
            "threads": _torch_threads(),
            "compute_cores": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
        }

    async def check_health(self) -> None:
        """Called by Serve; raising marks the replica unhealthy and Serve replaces it."""
        self._start_background_work()
        await self.engine.check_health()

    def __del__(self) -> None:
        parking = getattr(self, "_parking", None)
        if parking is not None:
            parking.close()
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
