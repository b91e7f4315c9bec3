"""Metric primitives that add up across processes: each process counts into a `Samples`, a plain struct it can
send over Ray; the samples of every process are summed (`Samples.merge`) and written as Prometheus text
(`render`). Counters and histograms only ever grow, so a process's latest samples always replace its earlier
ones and a lost report loses nothing."""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection, Iterable
from typing import Literal

import msgspec

Labels = tuple[str, ...]
Kind = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REPORT_INTERVAL_S = 2.0
"""How often each replica reports its samples to the metrics hub."""
TOKEN_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class Family(msgspec.Struct, frozen=True):
    """One metric: its name (with `_total` for a counter), help, label names and, for a histogram, buckets."""

    name: str
    kind: Kind
    help: str
    labels: Labels = ()
    buckets: tuple[float, ...] = ()


class Histogram(msgspec.Struct):
    counts: list[int]
    """Per bucket (not cumulative), the last one past the largest bound."""
    total: float = 0.0

    def observe(self, bounds: tuple[float, ...], value: float, times: int) -> None:
        self.counts[bisect.bisect_left(bounds, value)] += times
        self.total += value * times


class Samples(msgspec.Struct):
    """Counter, gauge and histogram values of some families, by family name and label values."""

    values: dict[str, dict[Labels, float]] = {}
    histograms: dict[str, dict[Labels, Histogram]] = {}

    def add(self, family: Family, labels: Labels, amount: float = 1.0) -> None:
        series = self.values.setdefault(family.name, {})
        series[labels] = series.get(labels, 0.0) + amount

    def set(self, family: Family, labels: Labels, value: float) -> None:
        self.values.setdefault(family.name, {})[labels] = value

    def observe(self, family: Family, labels: Labels, value: float, times: int = 1) -> None:
        """`times`: the same value observed that many times (each token of a stream at its mean interval)."""
        series = self.histograms.setdefault(family.name, {})
        histogram = series.get(labels)
        if histogram is None:
            histogram = series[labels] = Histogram(counts=[0] * (len(family.buckets) + 1))
        histogram.observe(family.buckets, value, times)

    def merge(self, other: Samples) -> None:
        """Adds `other` into these samples, series by series."""
        for name, series in other.values.items():
            mine = self.values.setdefault(name, {})
            for labels, value in series.items():
                mine[labels] = mine.get(labels, 0.0) + value
        for name, histograms in other.histograms.items():
            own = self.histograms.setdefault(name, {})
            for labels, histogram in histograms.items():
                if labels in own:
                    total = own[labels]
                    total.counts = [a + b for a, b in zip(total.counts, histogram.counts, strict=True)]
                    total.total += histogram.total
                else:
                    own[labels] = Histogram(counts=list(histogram.counts), total=histogram.total)

    def drop(self, label: str, keep: Collection[str], families: Iterable[Family]) -> None:
        """Removes the series whose `label` has a value outside `keep` (and not empty): a deleted adapter's."""
        for family in families:
            if label not in family.labels:
                continue
            position = family.labels.index(label)
            for table in (self.values.get(family.name, {}), self.histograms.get(family.name, {})):
                for labels in [labels for labels in table if labels[position] and labels[position] not in keep]:
                    del table[labels]


def render(families: Iterable[Family], samples: Samples) -> str:
    """The Prometheus text exposition format (0.0.4) of `families`, in the order given."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        if family.kind == "histogram":
            for labels, histogram in sorted(samples.histograms.get(family.name, {}).items()):
                lines.extend(_histogram_lines(family, labels, histogram))
        else:
            for labels, value in sorted(samples.values.get(family.name, {}).items()):
                lines.append(f"{family.name}{_label_text(family.labels, labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _histogram_lines(family: Family, labels: Labels, histogram: Histogram) -> list[str]:
    lines, cumulative = [], 0
    for bound, count in zip([*family.buckets, math.inf], histogram.counts, strict=True):
        cumulative += count
        text = _label_text((*family.labels, "le"), (*labels, "+Inf" if bound == math.inf else _number(bound)))
        lines.append(f"{family.name}_bucket{text} {cumulative}")
    plain = _label_text(family.labels, labels)
    lines.append(f"{family.name}_sum{plain} {_number(histogram.total)}")
    lines.append(f"{family.name}_count{plain} {cumulative}")
    return lines


def _label_text(names: Labels, values: Labels) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape_value(value)}"' for name, value in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))
