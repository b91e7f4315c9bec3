"""GroupedPunicaWrapperCPU against a per-token reference, and against vLLM's own CPU wrapper."""

from __future__ import annotations

import pytest
import torch
from vllm.lora.layers.utils import LoRAMapping
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from engines.lora_cpu import OWN_PRODUCTS_MIN_TOKENS, GroupedPunicaWrapperCPU, base_forward_when_idle

MAX_LORAS, MAX_RANK, IN = 4, 16, 24
SLICES = (20, 12, 12)  # a merged q/k/v projection


def stacked(ranks: dict[int, int], seed: int = 0) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """vLLM's layout: A [loras, 1, max_rank, in] and B [loras, 1, out, max_rank], zero past each rank."""
    generator = torch.Generator().manual_seed(seed)
    lora_a = tuple(torch.zeros(MAX_LORAS, 1, MAX_RANK, IN) for _ in SLICES)
    lora_b = tuple(torch.zeros(MAX_LORAS, 1, size, MAX_RANK) for size in SLICES)
    for slot, rank in ranks.items():
        for a, b in zip(lora_a, lora_b, strict=True):
            a[slot, 0, :rank] = torch.randn(rank, IN, generator=generator)
            b[slot, 0, :, :rank] = torch.randn(b.shape[2], rank, generator=generator)
    return lora_a, lora_b


def reference(x: torch.Tensor, token_slots: list[int], lora_a, lora_b, scale: float) -> torch.Tensor:
    outputs = []
    for row, slot in zip(x, token_slots, strict=True):
        if slot < 0:
            outputs.append(torch.zeros(sum(SLICES)))
            continue
        parts = [(row @ a[slot, 0].T) @ b[slot, 0].T for a, b in zip(lora_a, lora_b, strict=True)]
        outputs.append(scale * torch.cat(parts))
    return torch.stack(outputs)


def wrapper(cls: type[PunicaWrapperCPU], ranks: dict[int, int], token_slots: list[int], *, kernel: bool = True):
    punica = cls(256, 128, "cpu")
    if isinstance(punica, GroupedPunicaWrapperCPU):
        assert punica.kernel is not None, "the test machine has a C compiler: the kernel must build"
        if not kernel:
            punica.kernel = None  # PyTorch's batched products, as on a node without a C compiler
        for slot, rank in ranks.items():
            punica.adapter_activated(slot, rank)
    route(punica, ranks, token_slots)
    return punica


def route(punica: PunicaWrapperCPU, ranks: dict[int, int], token_slots: list[int]) -> None:
    """What vLLM does before each step: map every token to its adapter's slot."""
    lora_index_to_id: list[int | None] = [None] * MAX_LORAS
    for slot in ranks:
        lora_index_to_id[slot] = 100 + slot
    index_mapping = tuple(lora_index_to_id[slot] if slot >= 0 else 0 for slot in token_slots)
    mapping = LoRAMapping(index_mapping, index_mapping, is_prefill=True)
    punica.update_metadata(mapping, lora_index_to_id, MAX_LORAS + 1, 1000)


CASES = {
    "decode, one token per adapter": ({0: 8, 1: 8, 2: 8}, [0, 1, 2, -1, 1]),
    "decode, mixed ranks": ({0: 4, 1: 16, 3: 8}, [3, -1, 1, 0, 0, 1]),
    "one adapter": ({2: 8}, [2, 2, -1, 2]),
    "prefill, rows not contiguous": (
        {0: 8, 1: 4},
        [0] * OWN_PRODUCTS_MIN_TOKENS + [1] * OWN_PRODUCTS_MIN_TOKENS + [0, -1] * 40,
    ),
    "a prefill beside decode tokens of other adapters": (
        {0: 8, 1: 4, 2: 16},
        [0] * OWN_PRODUCTS_MIN_TOKENS + [1, 2, -1, 2, 0],
    ),
    "base model only": ({0: 8}, [-1, -1, -1]),
}


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "batched products"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_per_token_reference(case: str, kernel: bool) -> None:
    ranks, token_slots = CASES[case]
    lora_a, lora_b = stacked(ranks)
    x = torch.randn(len(token_slots), IN)
    base = torch.randn(len(token_slots), sum(SLICES))
    punica = wrapper(GroupedPunicaWrapperCPU, ranks, token_slots, kernel=kernel)

    y = base.clone()
    punica.add_lora_linear(y, x, lora_a, lora_b, 0.5, SLICES)

    expected = base + reference(x, token_slots, lora_a, lora_b, 0.5)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)


def test_matches_vllms_cpu_wrapper() -> None:
    ranks, token_slots = {0: 8, 1: 8, 2: 8}, [0, 1, 2, -1, 1, 0, 0, 0]
    lora_a, lora_b = stacked(ranks, seed=3)
    x = torch.randn(len(token_slots), IN)
    ours, stock = torch.zeros(len(token_slots), sum(SLICES)), torch.zeros(len(token_slots), sum(SLICES))

    wrapper(GroupedPunicaWrapperCPU, ranks, token_slots).add_lora_linear(ours, x, lora_a, lora_b, 1.0, SLICES)
    wrapper(PunicaWrapperCPU, ranks, token_slots).add_lora_linear(stock, x, lora_a, lora_b, 1.0, SLICES)

    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)


def test_base_model_tokens_stay_untouched_when_every_slot_is_full() -> None:
    """vLLM's CPU ops index slot -1 for base-model tokens, which is the last adapter once all are loaded."""
    ranks = dict.fromkeys(range(MAX_LORAS), 8)
    lora_a, lora_b = stacked(ranks)
    x = torch.randn(3, IN)
    y = torch.zeros(3, sum(SLICES))

    wrapper(GroupedPunicaWrapperCPU, ranks, [0, -1, 3]).add_lora_linear(y, x, lora_a, lora_b, 1.0, SLICES)

    assert torch.count_nonzero(y[1]) == 0
    assert torch.count_nonzero(y[0]) > 0 and torch.count_nonzero(y[2]) > 0


def test_new_weights_in_a_slot_replace_the_cached_matrices() -> None:
    ranks, token_slots = {0: 8}, [0, 0]
    lora_a, lora_b = stacked(ranks, seed=1)
    x = torch.randn(2, IN)
    punica = wrapper(GroupedPunicaWrapperCPU, ranks, token_slots)
    punica.add_lora_linear(torch.zeros(2, sum(SLICES)), x, lora_a, lora_b, 1.0, SLICES)

    fresh_a, fresh_b = stacked(ranks, seed=2)
    for old, new in zip(lora_a + lora_b, fresh_a + fresh_b, strict=True):
        old.copy_(new)
    punica.adapter_activated(0, 8)
    route(punica, ranks, token_slots)
    y = torch.zeros(2, sum(SLICES))
    punica.add_lora_linear(y, x, lora_a, lora_b, 1.0, SLICES)

    torch.testing.assert_close(y, reference(x, token_slots, fresh_a, fresh_b, 1.0), rtol=1e-4, atol=1e-4)


VOCAB, HIDDEN = 50, IN


def head_weights(ranks: dict[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """vLLM's LM-head layout: A [loras, 1, max_rank, hidden] and B [loras, 1, vocab, max_rank]."""
    generator = torch.Generator().manual_seed(seed)
    lora_a, lora_b = torch.zeros(MAX_LORAS, 1, MAX_RANK, HIDDEN), torch.zeros(MAX_LORAS, 1, VOCAB, MAX_RANK)
    for slot, rank in ranks.items():
        lora_a[slot, 0, :rank] = torch.randn(rank, HIDDEN, generator=generator)
        lora_b[slot, 0, :, :rank] = torch.randn(VOCAB, rank, generator=generator)
    return lora_a, lora_b


def head_wrapper(cls: type[PunicaWrapperCPU], ranks: dict[int, int], head: set[int], sampled: list[int]):
    punica = cls(256, 128, "cpu")
    if isinstance(punica, GroupedPunicaWrapperCPU):
        for slot, rank in ranks.items():
            punica.adapter_activated(slot, rank, head=slot in head)
    route(punica, ranks, sampled)
    return punica


@pytest.mark.parametrize("sampled", [[0, 1, -1, 1], [1, 1, 1], [-1, 0, -1, 2, 0]])
def test_head_delta_matches_vllms_cpu_wrapper(sampled: list[int]) -> None:
    ranks = {0: 8, 1: 16, 2: 4}
    lora_a, lora_b = head_weights(ranks, seed=5)
    x = torch.randn(len(sampled), HIDDEN)
    base = torch.randn(len(sampled), VOCAB)
    ours, stock = base.clone(), base.clone()

    head_wrapper(GroupedPunicaWrapperCPU, ranks, set(ranks), sampled).add_lora_logits(ours, x, lora_a, lora_b, 1.0)
    head_wrapper(PunicaWrapperCPU, ranks, set(ranks), sampled).add_lora_logits(stock, x, lora_a, lora_b, 1.0)

    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)
    assert not torch.equal(ours, base)


def test_a_batch_without_head_adapters_leaves_the_logits_and_skips_the_weights() -> None:
    """Adapters without LM-head weights (what the platform trains) and base-model tokens: nothing to add, and
    the head's LoRA weights are never read (here they would be NaN if they were)."""
    ranks = {0: 8, 1: 8}
    lora_a = torch.full((MAX_LORAS, 1, MAX_RANK, HIDDEN), float("nan"))
    lora_b = torch.full((MAX_LORAS, 1, VOCAB, MAX_RANK), float("nan"))
    logits = torch.randn(4, VOCAB)
    for head, sampled in (({0, 1}, [-1, -1, -1, -1]), (set(), [0, 1, -1, 0])):
        y = logits.clone()
        punica = head_wrapper(GroupedPunicaWrapperCPU, ranks, head, sampled)
        punica.add_lora_logits(y, torch.randn(4, HIDDEN), lora_a, lora_b, 1.0)
        assert torch.equal(y, logits)


def test_only_tokens_of_adapters_with_head_weights_get_a_head_delta() -> None:
    ranks = {0: 8, 1: 8}
    lora_a, lora_b = head_weights({1: 8}, seed=9)
    x = torch.randn(3, HIDDEN)
    y = torch.zeros(3, VOCAB)

    head_wrapper(GroupedPunicaWrapperCPU, ranks, {1}, [0, 1, -1]).add_lora_logits(y, x, lora_a, lora_b, 1.0)

    expected = (x[1] @ lora_a[1, 0].T) @ lora_b[1, 0].T
    torch.testing.assert_close(y[1], expected, rtol=1e-4, atol=1e-4)
    assert torch.count_nonzero(y[0]) == 0 and torch.count_nonzero(y[2]) == 0


@pytest.mark.parametrize(
    ("ranks", "token_slots", "idle"),
    [
        ({}, [-1, -1], True),  # no adapter loaded yet
        ({0: 8, 1: 8}, [-1, -1, -1], True),  # adapters loaded, none in the step
        ({0: 8, 1: 8}, [-1, 1, -1], False),
        ({0: 0}, [0], False),  # an adapter of unknown rank: vLLM's own ops, never skipped
    ],
)
def test_a_step_without_adapter_tokens_is_idle(ranks: dict[int, int], token_slots: list[int], idle: bool) -> None:
    assert wrapper(GroupedPunicaWrapperCPU, ranks, token_slots).idle is idle


def test_an_adapter_activated_after_the_step_was_planned_ends_the_idle_state() -> None:
    punica = wrapper(GroupedPunicaWrapperCPU, {0: 8}, [-1])
    punica.adapter_activated(1, 8)
    assert not punica.idle


class _Layer(torch.nn.Module):
    def __init__(self, punica: GroupedPunicaWrapperCPU) -> None:
        super().__init__()
        self.punica_wrapper = punica
        self.base_layer = torch.nn.Linear(IN, sum(SLICES))
        self.lora_forwards = 0

    def forward(self, input_: torch.Tensor) -> torch.Tensor:
        self.lora_forwards += 1
        return self.base_layer(input_)


@pytest.mark.parametrize(("token_slots", "lora_forwards"), [([-1, -1], 0), ([0, -1], 1)])
def test_an_idle_step_runs_the_base_layer_alone(token_slots: list[int], lora_forwards: int) -> None:
    layer = _Layer(wrapper(GroupedPunicaWrapperCPU, {0: 8}, token_slots))
    forward = base_forward_when_idle(_Layer.forward)
    x = torch.randn(len(token_slots), IN)

    torch.testing.assert_close(forward(layer, x), layer.base_layer(x))
    assert layer.lora_forwards == lora_forwards
