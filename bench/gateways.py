"""Scenarios 1 and 2: the same streaming load on the platform, vLLM's own server without LoRA (the bare engine),
vLLM's server with `--enable-lora` (the platform's engine settings), LiteLLM's proxy in front of that server, and
Ray Serve LLM. Each system is measured with two closed loops: paced (each client pauses a random 0-0.3 s between
requests) and unpaced (no pause). A second start of the bare server in the same round gives the noise floor; the
platform with its metrics off gives their cost. Each round starts and stops every system in turn, alternating
their order (bench.measure.alternate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.loadgen import PAUSE_S
from bench.measure import Row, alternate, in_order, measure
from bench.servers import MODEL_ID, Server, litellm_proxy, platform, ray_serve_llm, vllm_server

SCENARIO = "gateways"
# Requests per concurrency: at c=32 six per client, so that the start-up wave is a small part of the sample
# and the c=32 TTFT p50 moves less with this machine's noise (at 96 requests, a third was that wave).
LEVELS = {1: 8, 8: 32, 32: 192}
LOOPS = {"paced": PAUSE_S, "unpaced": 0.0}
NOISE = "vllm-bare-again"
"""The bare server started a second time in the same round: its ratio to the first start is the noise floor."""
METRICS_OFF = "platform-metrics-off"
"""The platform with METRICS=false: the platform against it is what counting and reporting metrics cost."""
PEERS = ("vllm-bare", "vllm-server", "litellm-proxy", "ray-serve-llm", NOISE, METRICS_OFF)


def run(work: Path, *, rounds: int, levels: dict[int, int] = LEVELS, peers: set[str]) -> list[Row]:
    rows: list[Row] = []

    def both_loops(system: str, server: Server, round_no: int) -> None:
        for loop in in_order(list(LOOPS), round_no):
            rows.extend(
                measure(SCENARIO, system, server.url, MODEL_ID, levels, round_no=round_no, pause_s=LOOPS[loop], loop=loop)
            )

    def on_platform(round_no: int) -> None:
        with platform(8400, work) as server:
            both_loops("platform", server, round_no)

    def on_platform_without_metrics(round_no: int) -> None:
        with platform(8405, work, name=METRICS_OFF, METRICS="false") as server:
            both_loops(METRICS_OFF, server, round_no)

    def bare(name: str) -> Callable[[int], None]:
        def on_bare(round_no: int) -> None:
            with vllm_server(8404, work, lora=False) as server:
                both_loops(name, server, round_no)

        return on_bare

    def on_vllm(round_no: int) -> None:
        with vllm_server(8401, work) as server:

            def direct() -> None:
                both_loops("vllm-server", server, round_no)

            def proxied() -> None:
                with litellm_proxy(8402, work, server.url) as proxy:
                    both_loops("litellm-proxy", proxy, round_no)

            steps = [direct, proxied] if "litellm-proxy" in peers else [direct]
            for step in in_order(steps, round_no):
                step()

    def on_ray_serve_llm(round_no: int) -> None:
        with ray_serve_llm(8403, work) as server:
            both_loops("ray-serve-llm", server, round_no)

    systems: list[Callable[[int], None]] = [on_platform]
    if "vllm-bare" in peers:
        systems.append(bare("vllm-bare"))
    if "vllm-server" in peers or "litellm-proxy" in peers:
        systems.append(on_vllm)
    if "ray-serve-llm" in peers:
        systems.append(on_ray_serve_llm)
    if NOISE in peers:
        systems.append(bare(NOISE))
    if METRICS_OFF in peers:
        systems.append(on_platform_without_metrics)
    alternate(systems, rounds)
    return rows
