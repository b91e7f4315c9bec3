"""Part of scenario 10: how close the engine's LoRA products for eight adapters in one decode step come to the
time it takes just to read those adapters' weights once. With eight different adapters among eight streams every
step needs all eight adapters' weights; on a CPU whose decode is bound by memory bandwidth, that read is a floor
no arrangement of the products can go under.

Measured on one thread (an engine replica's compute core) with the default model's layer shapes: the step's
LoRA products as the platform's engine runs them, the read floor (a sum over the same weights, trimmed to their
real rank), and the step's base-model linear layers (whose weights are the bulk of a base-only step's reads)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.measure import Row
from bench.servers import MODEL_DIR

SCENARIO = "profile"
ADAPTERS = 8
RANK = 8
TOKENS = 8


def layer_shapes(config: dict[str, Any]) -> list[tuple[int, tuple[int, ...]]]:
    """(input size, output slices) of one decoder layer's LoRA-wrapped linears, as vLLM merges them."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    head = hidden // config["num_attention_heads"]
    kv = head * config["num_key_value_heads"]
    return [(hidden, (hidden, kv, kv)), (hidden, (hidden,)), (hidden, (inner, inner)), (inner, (hidden,))]


def _per_call_ms(step: Callable[[], object], repeats: int = 20) -> float:
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


def measure() -> Row:
    from vllm.lora.layers.utils import LoRAMapping

    from engines.lora_cpu import GroupedPunicaWrapperCPU

    config = json.loads((MODEL_DIR / "config.json").read_text())
    shapes = layer_shapes(config) * config["num_hidden_layers"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        punica = GroupedPunicaWrapperCPU(256, 128, "cpu")
        for slot in range(ADAPTERS):
            punica.adapter_activated(slot, RANK)
        slots = list(range(ADAPTERS))
        index_mapping = tuple(100 + slot for slot in slots[:TOKENS])
        punica.update_metadata(
            LoRAMapping(index_mapping, index_mapping, is_prefill=False), [100 + s for s in slots], ADAPTERS + 1, 1000
        )
        layers = []
        for inputs, slices in shapes:
            lora_a = tuple(torch.randn(ADAPTERS, 1, RANK, inputs) for _ in slices)
            lora_b = tuple(torch.randn(ADAPTERS, 1, size, RANK) for size in slices)
            layers.append((inputs, slices, lora_a, lora_b, torch.randn(sum(slices), inputs)))
        xs = {inputs: torch.randn(TOKENS, inputs) for inputs, *_ in layers}
        ys = {slices: torch.zeros(TOKENS, sum(slices)) for _, slices, *_ in layers}

        def lora_products() -> None:
            for inputs, slices, lora_a, lora_b, _ in layers:
                punica.add_lora_linear(ys[slices], xs[inputs], lora_a, lora_b, 1.0, slices)

        real = [weights.contiguous() for _, _, lora_a, lora_b, _ in layers for weights in (*lora_a, *lora_b)]

        def read_weights() -> None:
            for weights in real:
                weights.sum()

        def base_linears() -> None:
            for inputs, _, _, _, base in layers:
                torch.nn.functional.linear(xs[inputs], base)

        return {
            "scenario": SCENARIO,
            "system": "lora-ops",
            "adapters": ADAPTERS,
            "rank": RANK,
            "tokens": TOKENS,
            "adapter_mb": round(sum(weights.numel() * weights.element_size() for weights in real) / 2**20, 1),
            "lora_ms": _per_call_ms(lora_products),
            "read_floor_ms": _per_call_ms(read_weights),
            "base_linear_ms": _per_call_ms(base_linears),
        }
    finally:
        torch.set_num_threads(threads)
