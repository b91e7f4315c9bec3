"""Scenario 3: mixed traffic over 1, 4 and 8 LoRA adapters against base-only traffic, on the platform
(adapters placed in DATA_DIR/adapters, loaded on first use), on vLLM's server (`--lora-modules`) and on
Ray Serve LLM (adapters loaded on first use from a local S3, as `<base>:<adapter>`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench.measure import Row, alternate, in_order, measure
from bench.servers import MODEL_ID, platform, ray_serve_llm, s3_server, vllm_server

SCENARIO = "adapters"
WITHOUT_KERNEL = "platform-lora-pytorch"
"""A peer on request (`--peers`): the platform with PyTorch's batched products instead of its LoRA kernel."""
MIXES = (0, 1, 4, 8)
LEVELS = {8: 32}


def build_adapters(folder: Path, count: int) -> dict[str, Path]:
    """Real PEFT adapters (rank 8, random weights) on the default model, built once and reused."""
    from tests.e2e.adapters import build_random_adapter

    folder.mkdir(parents=True, exist_ok=True)
    adapters = {}
    for index in range(count):
        name = f"bench-lora-{index}"
        target = folder / name
        if not target.exists():
            build_random_adapter(target, MODEL_ID, seed=index, scale=1.0)
        adapters[name] = target
    return adapters


def run(
    work: Path,
    *,
    rounds: int,
    levels: dict[int, int] = LEVELS,
    with_vllm: bool = True,
    with_ray_serve_llm: bool = True,
    without_kernel: bool = False,
) -> list[Row]:
    adapters = build_adapters(work / "platform" / "adapters", max(MIXES))
    names = list(adapters)
    rows: list[Row] = []

    def mixes(system: str, url: str, round_no: int, prefix: str = "") -> None:
        for count in in_order(MIXES, round_no):
            models = [prefix + name for name in names[:count]] or MODEL_ID
            rows.extend(measure(SCENARIO, system, url, models, levels, round_no=round_no, adapters=count))

    def on_platform(round_no: int) -> None:
        with platform(8400, work) as server:
            mixes("platform", server.url, round_no)

    def on_platform_without_kernel(round_no: int) -> None:
        if not (work / WITHOUT_KERNEL / "adapters").exists():
            shutil.copytree(work / "platform" / "adapters", work / WITHOUT_KERNEL / "adapters")
        with platform(8402, work, name=WITHOUT_KERNEL, LLM_PLATFORM_LORA_KERNEL="0") as server:
            mixes(WITHOUT_KERNEL, server.url, round_no)

    def on_vllm(round_no: int) -> None:
        with vllm_server(8401, work, adapters=adapters) as server:
            mixes("vllm-server", server.url, round_no)

    def on_ray_serve_llm(round_no: int) -> None:
        with s3_server(work, adapters), ray_serve_llm(8403, work, adapters=True) as server:
            mixes("ray-serve-llm", server.url, round_no, prefix=f"{MODEL_ID}:")

    systems: list[Callable[[int], None]] = [on_platform]
    if without_kernel:
        systems.append(on_platform_without_kernel)
    if with_vllm:
        systems.append(on_vllm)
    if with_ray_serve_llm:
        systems.append(on_ray_serve_llm)
    alternate(systems, rounds)
    return rows
