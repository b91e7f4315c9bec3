"""Where the platform's metrics meet: every gateway and engine replica, on any node, reports its samples to the one
hub replica every few seconds, and a scrape on any gateway replica reads the sum. A replica reports everything it
has counted so far, so the hub keeps only each replica's latest report."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

import msgspec
from ray.serve.handle import DeploymentHandle

from engines.core.metrics import REPORT_INTERVAL_S, Samples
from gateway.metrics import GatewayMetrics

STALE_AFTER_S = 30.0
"""A replica silent this long is gone: its gauges go, its counters stay (a gateway's requests were answered)."""


class _Report(msgspec.Struct):
    samples: Samples
    at: float
    counters_outlive: bool


class MetricsHub:
    """The hub: a Serve deployment of one replica, or an object in a single-process app."""

    def __init__(self) -> None:
        self._reports: dict[str, _Report] = {}

    async def report(self, source: str, samples: Samples, *, counters_outlive: bool) -> None:
        self._reports[source] = _Report(samples, time.monotonic(), counters_outlive)

    async def collect(self) -> Samples:
        now, total = time.monotonic(), Samples()
        for source, report in list(self._reports.items()):
            if now - report.at > STALE_AFTER_S:
                if not report.counters_outlive:
                    del self._reports[source]
                    continue
                report.samples.values = {
                    name: series for name, series in report.samples.values.items() if name.endswith("_total")
                }
            total.merge(report.samples)
        return total


class Hub(Protocol):
    async def report(self, source: str, samples: Samples, *, counters_outlive: bool) -> None: ...

    async def collect(self) -> Samples: ...


class ServeHub:
    """The hub deployment, through its handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def report(self, source: str, samples: Samples, *, counters_outlive: bool) -> None:
        await self.handle.report.remote(source, samples, counters_outlive=counters_outlive)

    async def collect(self) -> Samples:
        return await self.handle.collect.remote()


class MetricsReporter:
    """A gateway replica's side: its counts, reported to the hub while the app runs and before each scrape."""

    def __init__(self, hub: Hub, metrics: GatewayMetrics | None = None) -> None:
        self.hub = hub
        self.metrics = metrics or GatewayMetrics()
        self._task: asyncio.Task[None] | None = None

    async def report(self) -> None:
        await self.hub.report(f"gateway:{self.metrics.replica}", self.metrics.snapshot(), counters_outlive=True)

    async def collect(self) -> Samples:
        await self.report()
        return await self.hub.collect()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.report()  # what this replica answered while it drained

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            with contextlib.suppress(Exception):  # the hub being replaced only delays a report
                await self.report()
