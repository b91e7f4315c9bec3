"""Metric samples that add up across processes, written as Prometheus text that prometheus_client parses."""

from __future__ import annotations

import pickle

from prometheus_client.parser import text_string_to_metric_families

from engines.core.metrics import Family, Samples, render

COUNT = Family("jobs_done_total", "counter", 'Jobs done, by "kind".', ("kind", "adapter"))
LOAD = Family("queue_depth", "gauge", "Queue depth.", ("replica",))
TIME = Family("step_seconds", "histogram", "Step time.", ("adapter",), (0.1, 1.0))


def parsed(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render([COUNT, LOAD, TIME], samples)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_gauges_and_histograms_render_and_parse() -> None:
    samples = Samples()
    samples.add(COUNT, ("a\\b", 'x"y'), 2)
    samples.set(LOAD, ("r1",), 3)
    samples.observe(TIME, ("",), 0.05)
    samples.observe(TIME, ("",), 0.5, times=3)
    samples.observe(TIME, ("",), 5.0)
    got = parsed(samples)
    assert got[("jobs_done_total", (("adapter", 'x"y'), ("kind", "a\\b")))] == 2
    assert got[("queue_depth", (("replica", "r1"),))] == 3
    buckets = {labels: value for (name, labels), value in got.items() if name == "step_seconds_bucket"}
    assert list(buckets.values()) == [1, 4, 5]  # cumulative: 0.1, 1.0, +Inf
    assert got[("step_seconds_count", (("adapter", ""),))] == 5
    assert abs(got[("step_seconds_sum", (("adapter", ""),))] - 6.55) < 1e-9


def test_samples_of_several_processes_add_up() -> None:
    first, second = Samples(), Samples()
    first.add(COUNT, ("k", ""), 1)
    second.add(COUNT, ("k", ""), 2)
    second.add(COUNT, ("j", ""), 5)
    first.observe(TIME, ("a",), 0.5)
    second.observe(TIME, ("a",), 0.05)
    total = Samples()
    for report in (first, pickle.loads(pickle.dumps(second))):  # as they cross Ray
        total.merge(report)
    got = parsed(total)
    assert got[("jobs_done_total", (("adapter", ""), ("kind", "k")))] == 3
    assert got[("jobs_done_total", (("adapter", ""), ("kind", "j")))] == 5
    assert got[("step_seconds_count", (("adapter", "a"),))] == 2
    assert first.values["jobs_done_total"][("k", "")] == 1, "merging reads the reports without changing them"


def test_series_of_an_adapter_no_longer_served_are_dropped() -> None:
    samples = Samples()
    for adapter in ("kept", "deleted", ""):
        samples.add(COUNT, ("k", adapter))
        samples.observe(TIME, (adapter,), 0.2)
    samples.drop("adapter", {"kept"}, [COUNT, LOAD, TIME])
    assert set(samples.values["jobs_done_total"]) == {("k", "kept"), ("k", "")}
    assert set(samples.histograms["step_seconds"]) == {("kept",), ("",)}
