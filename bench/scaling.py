"""Scenario 5: the same load on the platform with 1 and 2 engine replicas. On a 2-core machine a second
replica takes the core the control plane had to itself, so this shows the cost of Ray Serve routing and
what a second replica buys here."""

from __future__ import annotations

import functools
from pathlib import Path

from bench.measure import Row, alternate, measure
from bench.servers import MODEL_ID, platform

SCENARIO = "scaling"
LEVELS = {8: 32, 32: 96}
REPLICAS = (1, 2)


def run(work: Path, *, rounds: int, levels: dict[int, int] = LEVELS) -> list[Row]:
    rows: list[Row] = []

    def with_replicas(replicas: int, round_no: int) -> None:
        name = f"platform-{replicas}-replica{'s' if replicas > 1 else ''}"
        with platform(8400, work, name=name, ENGINE_REPLICAS=str(replicas)) as server:
            rows.extend(measure(SCENARIO, name, server.url, MODEL_ID, levels, round_no=round_no, replicas=replicas))

    alternate([functools.partial(with_replicas, replicas) for replicas in REPLICAS], rounds)
    return rows
