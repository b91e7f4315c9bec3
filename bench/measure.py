"""Runs one load level against one system and turns the result into a report row, printing progress."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from bench.loadgen import run_load

Row = dict[str, Any]


def measure(
    scenario: str, system: str, url: str, models: str | list[str], levels: dict[int, int], *, round_no: int, **extra: Any
) -> list[Row]:
    """One row per concurrency level (`levels` maps concurrency to the request count)."""
    rows = []
    for concurrency, requests in levels.items():
        result = asyncio.run(run_load(url, models, concurrency=concurrency, requests=requests))
        label = " ".join(f"{key}={value}" for key, value in extra.items())
        print(
            f"    {system:<14} {label} c={concurrency:<3} {result.output_tokens_per_s:6.1f} tok/s  "
            f"TTFT p50 {result.ttft_p50_ms or 0:6.0f} ms  ITL p50 {result.itl_p50_ms or 0:5.1f} ms  errors {result.errors}",
            flush=True,
        )
        rows.append({"scenario": scenario, "system": system, "round": round_no, **extra, **msgspec.structs.asdict(result)})
    return rows
