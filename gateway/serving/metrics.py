"""`/metrics`: the hub's sum over every replica, the fine-tuning families read from the store, and no series of
an adapter that is no longer served."""

from __future__ import annotations

import asyncio

from engines.core.metrics import render
from gateway.metrics import FAMILIES, job_samples
from gateway.metrics_hub import MetricsReporter
from gateway.serving.models import ModelCatalog
from jobs.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4"
"""Prometheus' text format; Litestar adds the charset."""


class MetricsService:
    def __init__(self, reporter: MetricsReporter, models: ModelCatalog, store: Store) -> None:
        self.reporter = reporter
        self.models = models
        self.store = store

    async def text(self) -> str:
        samples = await self.reporter.collect()
        served = {adapter.name for adapter in await self.models.adapters.all()}
        samples.drop("adapter", served, FAMILIES)
        counts, finished = await asyncio.to_thread(self.store.job_statistics)
        samples.merge(job_samples(counts, finished))
        return render(FAMILIES, samples)
