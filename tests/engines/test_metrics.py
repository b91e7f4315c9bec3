"""An engine replica's report: its requests' load and its adapters, labelled with the replica and its node."""

from __future__ import annotations

from engines.metrics import ADAPTER_LOAD, KV_CACHE, RUNNING, WAITING, EngineMetrics, RequestLoad


def test_the_load_counts_waiting_running_and_the_blocks_tokens_fill() -> None:
    load = RequestLoad(block_size=16, blocks=10)
    first, second = load.entered("a", 20), load.entered("b", 5)
    assert (load.waiting, load.running, load.kv_cache_usage) == (2, 0, 0.3)  # 2 blocks + 1 block of 10
    first[0] += 13
    first[1] = 1  # a's first tokens came out
    assert (load.waiting, load.running, load.kv_cache_usage) == (1, 1, 0.4)  # 33 tokens: 3 blocks
    load.left("a")
    load.left("b")
    second[0] += 99  # a finished stream's entry no longer counts
    assert (load.waiting, load.running, load.kv_cache_usage) == (0, 0, 0.0)


def test_a_report_labels_each_series_with_the_replica() -> None:
    load = RequestLoad(block_size=16, blocks=4)
    load.entered("a", 64)[1] = 1
    metrics = EngineMetrics("replica-1", "10.0.0.2", load)
    metrics.adapter_loaded(started_at=0.0)
    samples = metrics.samples(adapters_loaded=3)
    labels = ("replica-1", "10.0.0.2")
    assert samples.values[RUNNING.name][labels] == 1 and samples.values[WAITING.name][labels] == 0
    assert samples.values[KV_CACHE.name][labels] == 1.0
    assert sum(samples.histograms[ADAPTER_LOAD.name][()].counts) == 1
    idle = EngineMetrics("replica-2", "10.0.0.3", None).samples(adapters_loaded=0)
    assert idle.values[RUNNING.name][("replica-2", "10.0.0.3")] == 0
