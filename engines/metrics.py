"""What each engine replica reports to the metrics hub: its scheduler's load and its adapters, labelled with the
replica and its node, so the hub can sum every replica's report without two colliding."""

from __future__ import annotations

import time

from engines.core.metrics import Family, Samples

_REPLICA = ("replica", "node")
RUNNING = Family("llm_engine_running_requests", "gauge", "Requests in the engine's running batch, per replica.", _REPLICA)
WAITING = Family("llm_engine_waiting_requests", "gauge", "Requests waiting for the engine's batch, per replica.", _REPLICA)
KV_CACHE = Family(
    "llm_engine_kv_cache_usage_ratio", "gauge", "Share of the KV cache in use (0 to 1), per engine replica.", _REPLICA
)
ADAPTERS = Family("llm_engine_adapters_loaded", "gauge", "Adapters loaded in each engine replica.", _REPLICA)
ADAPTER_LOAD = Family(
    "llm_engine_adapter_load_seconds", "histogram",
    "Time to load an adapter into an engine replica's vLLM engine.",
    (), (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)  # fmt: skip
ENGINE_FAMILIES = (RUNNING, WAITING, KV_CACHE, ADAPTERS, ADAPTER_LOAD)


class SchedulerLoad:
    """The latest load vLLM's scheduler reported (through the engine's stat logger)."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0
        self.kv_cache_usage = 0.0

    def update(self, running: int, waiting: int, kv_cache_usage: float) -> None:
        self.running, self.waiting, self.kv_cache_usage = running, waiting, kv_cache_usage


class EngineMetrics:
    """One replica's report. vLLM reports its scheduler only while it steps, so an idle replica (no request in it)
    is reported as idle rather than as its last busy step."""

    def __init__(self, replica: str, node: str, load: SchedulerLoad | None) -> None:
        """`load`: the engine's, None where it keeps none (reported as idle)."""
        self.labels = (replica, node)
        self.load = load or SchedulerLoad()
        self.loads = Samples()

    def adapter_loaded(self, started_at: float) -> None:
        self.loads.observe(ADAPTER_LOAD, (), time.monotonic() - started_at)

    def samples(self, *, requests_in_replica: int, adapters_loaded: int) -> Samples:
        samples = Samples()
        samples.merge(self.loads)
        busy = requests_in_replica > 0
        samples.set(RUNNING, self.labels, self.load.running if busy else 0)
        samples.set(WAITING, self.labels, self.load.waiting if busy else 0)
        samples.set(KV_CACHE, self.labels, self.load.kv_cache_usage if busy else 0.0)
        samples.set(ADAPTERS, self.labels, adapters_loaded)
        return samples
