"""Multi-LoRA on vLLM's CPU backend without the per-token weight copy.

vLLM's CPU punica ops gather each token's whole adapter matrices (`weights[token_slot]`, padded to
MAX_LORA_RANK) before a batched matvec: a 40-token prompt copies its adapter 40 times, in every layer.
Mixed-adapter traffic ran at about half the base model's speed. Here each linear layer keeps, per set of
loaded adapters, their As stacked [adapters, slices x rank, in] and their Bs per output slice (q, k, v)
[adapters, rank, size], padded only to the largest rank among them:

- few tokens per adapter (decode): one call of the C kernel (`engines.lora_kernel`) per layer, one pass over
  each adapter's weights with its tokens read in place. With eight rank-8 adapters among eight tokens, on one
  core with the default model's layers (bench.lora_floor, 2026-11-30): 7.6 ms per step, where PyTorch's
  batched products (each adapter's tokens placed side by side, zero rows where one has fewer, one product for
  the As and one per slice for the Bs, the results added back to their rows) took 12.1 ms, and one product
  over every adapter for every token, masked to each token's own, about twice that; reading the weights once
  takes 6.9 ms, the base model's linears 82-90 ms. Without a C compiler, or for another dtype than float32,
  the batched products run;
- an adapter with many tokens in the step (a prefill), or alone in it without the kernel:
  `y[rows] += (x[rows] @ A^T) @ B`, with B block-diagonal over the slices (two products of its own).

The LM head is the other cost. vLLM wraps it for adapters that train `lm_head`, and its CPU op gathers a
[vocabulary x rank] matrix for every sampled token on every step, adapter or not: 37 % of the model worker's
time under base-only load at c=8, where vLLM with `--enable-lora` made 55 % of its bare server's tokens/s.
Here the head's delta is computed only for sampled tokens whose adapter has head weights, one product
per such adapter; a batch without one never touches the head's LoRA weights.

A step in which no token has an adapter (base-model traffic, and every step before an adapter is loaded) runs
the LoRA linear layers as their base layers: vLLM's CPU ops, run on zero weights, cost such a decode step at
c=1 about 15 %, and the LoRA wrappers' own Python about 4 % more.

The wrapper is installed as a vLLM general plugin (`register`) in the platform's engine processes only;
embeddings keep vLLM's own ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from vllm.lora.layers.logits_processor import LogitsProcessorWithLoRA
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from engines import lora_kernel

ENABLE_ENV = "LLM_PLATFORM_LORA_CPU_OPS"
KERNEL_ENV = "LLM_PLATFORM_LORA_KERNEL"
"""0 keeps PyTorch's batched products for mixed-adapter steps (to compare them with the kernel)."""
# From this many tokens in a step, an adapter gets two products of its own: the batched products pad every
# loaded adapter to the busiest one's tokens (about 0.16 ms per padded row on the default model), and an
# adapter's own products cost a few small operations per layer (about 1.5 ms per step).
OWN_PRODUCTS_MIN_TOKENS = 8


@dataclass(frozen=True)
class SlotLayout:
    """The loaded adapters' slots, in the order their weights are stacked; every adapter padded to the
    largest rank among them."""

    slots: tuple[int, ...]
    rank: int

    def position(self, slot: int) -> int:
        return self.slots.index(slot)


def slot_groups(token_slots: torch.Tensor) -> list[tuple[int, slice | torch.Tensor]]:
    """(slot, rows) for each adapter among `token_slots`; rows as a slice where they are contiguous.
    Base-model tokens (slot -1) belong to no group."""
    groups: list[tuple[int, slice | torch.Tensor]] = []
    for slot in torch.unique(token_slots).tolist():
        if slot < 0:
            continue
        rows = (token_slots == slot).nonzero().squeeze(1)
        first, last = int(rows[0]), int(rows[-1])
        groups.append((slot, slice(first, last + 1) if last - first + 1 == rows.numel() else rows))
    return groups


@dataclass
class LayerWeights:
    """One linear layer's loaded adapters as the products use them, built on first use after the set changed."""

    a: torch.Tensor
    """[adapters, slices x rank, in]: each adapter's As stacked over the slices."""
    b_slices: tuple[torch.Tensor, ...]
    """Per output slice, [adapters, rank, size]: the batched products read only these (a block-diagonal B
    is two thirds zeros for q/k/v: 4.5 against 2 ms per step for eight adapters)."""
    b_blocks: torch.Tensor | None = None
    """[adapters, slices x rank, out]: each adapter's Bs, block-diagonal over the slices, for an adapter's own
    products (one product instead of one per slice); built on first use."""
    kernel: lora_kernel.KernelLayer | None = None
    """The same weights as the kernel reads them; built on first use."""

    def blocks(self) -> torch.Tensor:
        if len(self.b_slices) == 1:
            return self.b_slices[0]
        if self.b_blocks is None:
            adapters, rank = self.a.shape[0], self.b_slices[0].shape[1]
            sizes = [b_slice.shape[2] for b_slice in self.b_slices]
            self.b_blocks = self.a.new_zeros(adapters, len(sizes) * rank, sum(sizes))
            offset = 0
            for index, b_slice in enumerate(self.b_slices):
                self.b_blocks[:, index * rank : (index + 1) * rank, offset : offset + sizes[index]] = b_slice
                offset += sizes[index]
        return self.b_blocks

    def kernel_layer(self) -> lora_kernel.KernelLayer:
        if self.kernel is None:
            self.kernel = lora_kernel.KernelLayer(self.a, self.b_slices)
        return self.kernel


@dataclass(frozen=True)
class Placement:
    """The batched products' layout of the tokens: each adapter's tokens side by side."""

    gather: torch.Tensor
    """For each (adapter, place) the token row it takes, or `tokens` (a zero row) where the adapter has fewer
    tokens than the busiest one."""
    scatter: torch.Tensor
    """The token row each (adapter, place) result goes to (row 0 for the zero rows)."""
    places: int
    """The most tokens any of the adapters has."""
    padded: bool
    """Whether any (adapter, place) takes the zero row."""

    @classmethod
    def build(cls, rest: list[tuple[int, torch.Tensor]], layout: SlotLayout, tokens: int) -> Placement:
        places = max(len(rows) for _, rows in rest)
        gather = torch.full((len(layout.slots), places), tokens, dtype=torch.long)
        for slot, rows in rest:
            gather[layout.position(slot), : len(rows)] = rows
        zero_rows = gather == tokens
        scatter = gather.masked_fill(zero_rows, 0)
        return cls(gather.view(-1), scatter.view(-1), places, bool(zero_rows.any()))


@dataclass
class BatchPlan:
    """Token-to-adapter routing for one engine step, shared by every LoRA layer."""

    layout: SlotLayout
    tokens: int
    groups: list[tuple[int, slice | torch.Tensor]]
    """(slot, rows) of every adapter in the batch."""
    own_products: list[tuple[int, slice | torch.Tensor]]
    """The adapters with enough tokens (a prefill), or alone in the batch where there is no kernel: two
    products each."""
    rest: list[tuple[int, torch.Tensor]]
    """(slot, token rows) of the other adapters: the kernel's, or the batched products'."""
    kernel: lora_kernel.KernelPlan | None = None
    placement: Placement | None = None

    @classmethod
    def build(cls, token_slots: torch.Tensor, layout: SlotLayout, *, kernel: bool) -> BatchPlan:
        groups = slot_groups(token_slots)
        tokens = token_slots.numel()
        if len(groups) == 1 and not kernel:
            return cls(layout, tokens, groups, groups, [])
        rows_of = {slot: torch.arange(tokens)[rows] for slot, rows in groups}
        own = [(slot, rows) for slot, rows in groups if len(rows_of[slot]) >= OWN_PRODUCTS_MIN_TOKENS]
        rest = [(slot, rows) for slot, rows in rows_of.items() if len(rows) < OWN_PRODUCTS_MIN_TOKENS]
        return cls(layout, tokens, groups, own, rest)

    def kernel_plan(self) -> lora_kernel.KernelPlan:
        if self.kernel is None:
            self.kernel = lora_kernel.KernelPlan([(self.layout.position(slot), rows) for slot, rows in self.rest])
        return self.kernel

    def batched_placement(self) -> Placement:
        if self.placement is None:
            self.placement = Placement.build(self.rest, self.layout, self.tokens)
        return self.placement


class GroupedPunicaWrapperCPU(PunicaWrapperCPU):
    """PunicaWrapperCPU whose linear-layer LoRA runs as one kernel call, or a few matrix products, per layer."""

    def __init__(self, max_num_batched_tokens: int, max_batches: int, device: torch.device | str, **kwargs: Any):
        super().__init__(max_num_batched_tokens, max_batches, device, **kwargs)
        self.slot_ranks: dict[int, int] = {}
        self.head_slots: set[int] = set()
        """Slots whose adapter has LM-head weights."""
        self.layout: SlotLayout | None = None
        self.plan: BatchPlan | None = None
        self.sampled_groups: list[tuple[int, slice | torch.Tensor]] = []
        self.weights: dict[int, LayerWeights] = {}
        """Per linear layer (keyed by its stacked A's address)."""
        self.idle = False
        """No token of the step has an adapter: the LoRA layers run as their base layers."""
        self.kernel = lora_kernel.library() if os.environ.get(KERNEL_ENV, "1") == "1" else None

    def adapter_activated(self, slot: int, rank: int, *, head: bool = False) -> None:
        """Called when an adapter's weights are copied into `slot`: cached matrices are stale. `head`: the
        adapter has LM-head weights."""
        self.slot_ranks[slot] = rank
        if head:
            self.head_slots.add(slot)
        else:
            self.head_slots.discard(slot)
        self.layout = None
        self.weights.clear()
        self.idle = False

    def update_metadata(
        self, mapping: Any, lora_index_to_id: list[int | None], max_loras: int, vocab_size: int, **kwargs: Any
    ) -> None:
        super().update_metadata(mapping, lora_index_to_id, max_loras, vocab_size, **kwargs)
        slots = tuple(slot for slot, lora_id in enumerate(lora_index_to_id) if lora_id is not None)
        if self.layout is None or self.layout.slots != slots:
            ranks = [self.slot_ranks.get(slot, 0) for slot in slots]
            # An adapter of unknown rank (0) leaves the whole step to vLLM's own ops.
            self.layout = SlotLayout(slots, 0 if 0 in ranks else max(ranks, default=0))
            self.weights.clear()
        self.plan = BatchPlan.build(self.token_lora_indices, self.layout, kernel=self.kernel is not None)
        self.idle = not self.plan.groups
        self.sampled_groups = slot_groups(self.sampler_indices) if self.head_slots else []

    def add_lora_linear(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        lora_a_stacked: tuple[torch.Tensor, ...],
        lora_b_stacked: tuple[torch.Tensor, ...],
        scale: float,
        output_slices: tuple[int, ...],
        *,
        buffer: tuple[torch.Tensor, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        plan = self.plan
        out = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        usable = plan is not None and plan.layout is self.layout and x.shape[0] == plan.tokens and plan.layout.rank > 0
        if not usable:
            super().add_lora_linear(y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, buffer=buffer, **kwargs)
            return
        assert plan is not None
        if not plan.groups:
            return
        weights = self._layer_weights(lora_a_stacked, lora_b_stacked, output_slices, out.dtype)
        x = x.to(out.dtype)
        for slot, rows in plan.own_products:
            position = plan.layout.position(slot)
            delta = (x[rows] @ weights.a[position].T) @ weights.blocks()[position]
            if isinstance(rows, slice):
                out[rows].add_(delta, alpha=scale)
            else:
                out.index_add_(0, rows, delta, alpha=scale)
        if not plan.rest:
            return
        if self.kernel is not None and out.dtype == torch.float32 and x.stride(1) == 1 and out.stride(1) == 1:
            lora_kernel.shrink_expand(self.kernel, plan.kernel_plan(), weights.kernel_layer(), x, out, scale)
            return
        # The adapters' tokens side by side, zero rows where one has fewer: two batched products.
        placement = plan.batched_placement()
        source = torch.nn.functional.pad(x, (0, 0, 0, 1)) if placement.padded else x
        placed = source.index_select(0, placement.gather).view(len(plan.layout.slots), placement.places, -1)
        hidden = torch.bmm(placed, weights.a.transpose(1, 2))
        if len(weights.b_slices) == 1:
            delta = torch.bmm(hidden, weights.b_slices[0])
        else:
            rank = plan.layout.rank
            parts = [torch.bmm(hidden[:, :, i * rank : (i + 1) * rank], b) for i, b in enumerate(weights.b_slices)]
            delta = torch.cat(parts, dim=2)
        delta = delta.view(-1, out.shape[1])
        out.index_add_(0, placement.scatter, delta, alpha=scale)

    def add_lora_logits(
        self,
        y: torch.Tensor,
        x: torch.Tensor,
        lora_a_stacked: torch.Tensor,
        lora_b_stacked: torch.Tensor,
        scale: float,
        *,
        buffer: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        groups = [(slot, rows) for slot, rows in self.sampled_groups if slot in self.head_slots]
        if not groups:
            return
        out = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        width = min(out.shape[1], lora_b_stacked.shape[2])
        for slot, rows in groups:
            rank = self.slot_ranks.get(slot, lora_a_stacked.shape[2])
            lora_a = lora_a_stacked[slot, 0, :rank]
            lora_b = lora_b_stacked[slot, 0, :width, :rank]
            delta = ((x[rows].to(lora_a.dtype) @ lora_a.T) @ lora_b.T).to(out.dtype)
            if isinstance(rows, slice):
                out[rows, :width].add_(delta, alpha=scale)
            else:
                out[:, :width].index_add_(0, rows, delta, alpha=scale)

    def _layer_weights(
        self,
        lora_a_stacked: tuple[torch.Tensor, ...],
        lora_b_stacked: tuple[torch.Tensor, ...],
        output_slices: tuple[int, ...],
        dtype: torch.dtype,
    ) -> LayerWeights:
        """vLLM's stacked weights are padded to its largest rank; these only to the loaded adapters' largest."""
        key = lora_a_stacked[0].data_ptr()
        if key not in self.weights:
            assert self.layout is not None
            slots, rank = list(self.layout.slots), self.layout.rank
            a = torch.cat([lora_a[slots, 0, :rank] for lora_a in lora_a_stacked], dim=1)
            b_slices = tuple(
                lora_b[slots, 0, :size, :rank].transpose(1, 2).to(dtype).contiguous()
                for lora_b, size in zip(lora_b_stacked, output_slices, strict=True)
            )
            self.weights[key] = LayerWeights(a.to(dtype).contiguous(), b_slices)
        return self.weights[key]


def _activate_adapter_hook(original: Any) -> Any:
    def activate_adapter(manager: Any, lora_id: int) -> bool:
        activated = original(manager, lora_id)
        if activated:
            slot = manager.lora_index_to_id.index(lora_id)
            model = manager._registered_adapters[lora_id]
            rank = max((weights.rank for weights in model.loras.values()), default=model.rank)
            # What vLLM copied into the head's slot decides, whatever the adapter's module names.
            head = any(
                isinstance(module, LogitsProcessorWithLoRA) and bool(module.lora_a_stacked[slot].any())
                for module in manager.modules.values()
            )
            for wrapper in manager.punica_wrapper_mapping.values():
                if isinstance(wrapper, GroupedPunicaWrapperCPU):
                    wrapper.adapter_activated(slot, rank, head=head)
        return activated

    return activate_adapter


def base_forward_when_idle(original: Any) -> Any:
    """A LoRA linear layer's forward that, in a step where no token has an adapter (before any adapter is
    loaded, too), runs its base layer alone: the LoRA wrapper's Python, about 200 calls a step, cost a base-only
    decode step at c=1 about 4 % on one core."""

    def forward(layer: Any, input_: torch.Tensor) -> Any:
        if getattr(layer.punica_wrapper, "idle", False):
            return layer.base_layer.forward(input_)
        return original(layer, input_)

    return forward


def register() -> None:
    """vLLM general plugin: active only where the platform's engine set ENABLE_ENV (not in the
    benchmark's stock vLLM server, which shares this virtualenv)."""
    if os.environ.get(ENABLE_ENV) != "1":
        return
    from vllm.lora.layers.column_parallel_linear import ColumnParallelLinearWithLoRA
    from vllm.lora.layers.replicated_linear import ReplicatedLinearWithLoRA
    from vllm.lora.layers.row_parallel_linear import RowParallelLinearWithLoRA
    from vllm.lora.model_manager import LoRAModelManager
    from vllm.platforms.cpu import CpuPlatform

    if getattr(LoRAModelManager.activate_adapter, "__module__", "") == __name__:
        return
    CpuPlatform.get_punica_wrapper = classmethod(lambda cls: f"{__name__}.GroupedPunicaWrapperCPU")
    for layer in (ColumnParallelLinearWithLoRA, RowParallelLinearWithLoRA, ReplicatedLinearWithLoRA):
        layer.forward = base_forward_when_idle(layer.forward)
    LoRAModelManager.activate_adapter = _activate_adapter_hook(LoRAModelManager.activate_adapter)
