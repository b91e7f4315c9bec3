"""Scenarios 1 and 2, with Ray Serve LLM as a further peer: the same streaming load on the platform, vLLM's
own server, LiteLLM's proxy in front of that server, and Ray Serve LLM. Each round starts and stops every
system in turn, alternating their order (bench.measure.alternate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.measure import Row, alternate, in_order, measure
from bench.servers import MODEL_ID, litellm_proxy, platform, ray_serve_llm, vllm_server

SCENARIO = "gateways"
# Requests per concurrency: at c=32 six per client, so that the start-up wave is a small part of the sample
# and the c=32 TTFT p50 moves less with this machine's noise (at 96 requests, a third was that wave).
LEVELS = {1: 8, 8: 32, 32: 192}


def run(work: Path, *, rounds: int, levels: dict[int, int] = LEVELS, peers: set[str]) -> list[Row]:
    rows: list[Row] = []

    def on_platform(round_no: int) -> None:
        with platform(8400, work) as server:
            rows.extend(measure(SCENARIO, "platform", server.url, MODEL_ID, levels, round_no=round_no))

    def on_vllm(round_no: int) -> None:
        with vllm_server(8401, work) as server:

            def direct() -> None:
                rows.extend(measure(SCENARIO, "vllm-server", server.url, MODEL_ID, levels, round_no=round_no))

            def proxied() -> None:
                with litellm_proxy(8402, work, server.url) as proxy:
                    rows.extend(measure(SCENARIO, "litellm-proxy", proxy.url, MODEL_ID, levels, round_no=round_no))

            steps = [direct, proxied] if "litellm-proxy" in peers else [direct]
            for step in in_order(steps, round_no):
                step()

    def on_ray_serve_llm(round_no: int) -> None:
        with ray_serve_llm(8403, work) as server:
            rows.extend(measure(SCENARIO, "ray-serve-llm", server.url, MODEL_ID, levels, round_no=round_no))

    systems: list[Callable[[int], None]] = [on_platform, on_vllm]
    if "ray-serve-llm" in peers:
        systems.append(on_ray_serve_llm)
    alternate(systems, rounds)
    return rows
