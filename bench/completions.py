"""Scenario 11: `/v1/completions` on the platform against vLLM's own server without LoRA (the bare engine), the
same raw prompt and streaming load as the gateways scenario's chat, both closed loops, alternating order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.gateways import LEVELS, LOOPS
from bench.measure import Row, alternate, in_order, measure
from bench.servers import MODEL_ID, Server, platform, vllm_server

SCENARIO = "completions"


def run(work: Path, *, rounds: int, levels: dict[int, int] = LEVELS) -> list[Row]:
    rows: list[Row] = []

    def both_loops(system: str, server: Server, round_no: int) -> None:
        for loop in in_order(list(LOOPS), round_no):
            rows.extend(
                measure(
                    SCENARIO,
                    system,
                    server.url,
                    MODEL_ID,
                    levels,
                    round_no=round_no,
                    pause_s=LOOPS[loop],
                    api="completions",
                    loop=loop,
                )
            )

    def on_platform(round_no: int) -> None:
        with platform(8400, work) as server:
            both_loops("platform", server, round_no)

    def on_bare(round_no: int) -> None:
        with vllm_server(8404, work, lora=False) as server:
            both_loops("vllm-bare", server, round_no)

    systems: list[Callable[[int], None]] = [on_platform, on_bare]
    alternate(systems, rounds)
    return rows
