"""Runs load levels against one system and turns the results into report rows, printing progress; and
runs systems in rounds that alternate their order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from bench.loadgen import API, PAUSE_S, load_generator_priority, run_load

Row = dict[str, Any]
T = TypeVar("T")


def in_order(items: Sequence[T], round_no: int) -> list[T]:
    """`items` as given in even rounds and reversed in odd ones, so slow drifts of a shared machine hit
    every system alike."""
    return list(items) if round_no % 2 == 0 else list(reversed(items))


def alternate(systems: Sequence[Callable[[int], None]], rounds: int) -> None:
    """Runs each system once per round (each is called with the round number), in alternating order."""
    for round_no in range(rounds):
        print(f"  round {round_no + 1}/{rounds}", flush=True)
        for system in in_order(systems, round_no):
            system(round_no)


def measure(
    scenario: str,
    system: str,
    url: str,
    models: str | list[str],
    levels: dict[int, int],
    *,
    round_no: int,
    pause_s: float = PAUSE_S,
    api: API = "chat",
    **extra: Any,
) -> list[Row]:
    """One row per concurrency level (`levels` maps concurrency to the request count)."""
    rows = []
    for concurrency, requests in levels.items():
        with load_generator_priority():
            result = asyncio.run(run_load(url, models, concurrency=concurrency, requests=requests, pause_s=pause_s, api=api))
        label = " ".join(f"{key}={value}" for key, value in extra.items())
        print(
            f"    {system:<14} {label} c={concurrency:<3} {result.output_tokens_per_s:6.1f} tok/s  "
            f"TTFT p50 {result.ttft_p50_ms or 0:6.0f} ms  ITL p50 {result.itl_p50_ms or 0:5.1f} ms  errors {result.errors}",
            flush=True,
        )
        rows.append({"scenario": scenario, "system": system, "round": round_no, **extra, **msgspec.structs.asdict(result)})
    return rows
