"""Multi-LoRA on vLLM's CPU backend without the per-token weight copy.

vLLM's CPU punica ops gather each token's whole adapter matrices (`weights[token_slot]`, padded to
MAX_LORA_RANK) before a batched matvec: a 40-token prompt copies its adapter 40 times, in every layer.
Mixed-adapter traffic ran at about half the base model's speed. Here each linear layer keeps, per set of
loaded adapters, one matrix of every slot's A (trimmed to the adapter's real rank) and one block-diagonal
matrix of the Bs, so the LoRA delta of a batch is two matrix products:

- few tokens (decode): `hidden = (x @ A_all) * token_mask`, where the mask keeps each token's own slot block
  (and is zero for base-model tokens), then per output slice (q, k, v) `y[:, slice] += hidden_slice @ B_slice`:
  a block-diagonal B would be two thirds zeros for q/k/v, and with eight adapters in a step reading those zeros
  cost as much as the products (12.7 ms against 8.9 ms per step for eight rank-8 adapters on the default model);
- many tokens (prefill) or one adapter: per slot in the batch, `y[rows] += (x[rows] @ A_s) @ B_s`, with B_s
  block-diagonal over the slices (two products per adapter).

The LM head is the other cost. vLLM wraps it for adapters that train `lm_head`, and its CPU op gathers a
[vocabulary x rank] matrix for every sampled token on every step, adapter or not: 37 % of the model worker's
time under base-only load at c=8, where vLLM with `--enable-lora` made 55 % of its bare server's tokens/s.
Here the head's delta is computed only for sampled tokens whose adapter has head weights, one product
per such adapter; a batch without one never touches the head's LoRA weights.

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

ENABLE_ENV = "LLM_PLATFORM_LORA_CPU_OPS"
# From this many tokens per adapter in a batch on, one product per adapter beats the masked product over
# every adapter (whose cost grows with tokens times adapters).
GROUPED_MIN_TOKENS = 24


@dataclass(frozen=True)
class SlotLayout:
    """Where each loaded adapter's rank block sits in the concatenated A/B matrices."""

    slots: tuple[int, ...]
    ranks: tuple[int, ...]

    def blocks(self, slices: int) -> dict[int, slice]:
        blocks, start = {}, 0
        for slot, rank in zip(self.slots, self.ranks, strict=True):
            blocks[slot] = slice(start, start + rank * slices)
            start += rank * slices
        return blocks

    def width(self, slices: int) -> int:
        return sum(self.ranks) * slices


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
    """One linear layer's adapters as the products use them, built on first use after the loaded set changed."""

    a_all: torch.Tensor
    """[in, width]: every slot's A, slot-major (each slot's slices side by side)."""
    b_blocks: torch.Tensor | None = None
    """[width, out]: each slot's Bs, block-diagonal over the slices (the per-adapter path)."""
    b_slices: tuple[torch.Tensor, ...] = ()
    """Per output slice, [width / slices, size]: every slot's B for that slice (the masked path)."""
    slice_major: torch.Tensor | None = None
    """Column order that regroups the hidden activations from slot-major to slice-major."""


@dataclass
class BatchPlan:
    """Token-to-adapter routing for one engine step, shared by every LoRA layer."""

    layout: SlotLayout
    tokens: int
    groups: list[tuple[int, slice | torch.Tensor]]  # (slot, rows) for each adapter in the batch
    grouped: bool
    masks: dict[tuple[int, torch.dtype], torch.Tensor]

    @classmethod
    def build(cls, token_slots: torch.Tensor, layout: SlotLayout) -> BatchPlan:
        groups = slot_groups(token_slots)
        tokens = token_slots.numel()
        grouped = len(groups) == 1 or tokens >= GROUPED_MIN_TOKENS * len(groups)
        return cls(layout, tokens, groups, grouped, {})

    def mask(self, slices: int, dtype: torch.dtype) -> torch.Tensor:
        """[tokens, width] with ones over each token's own slot block."""
        key = (slices, dtype)
        if key not in self.masks:
            mask = torch.zeros(self.tokens, self.layout.width(slices), dtype=dtype)
            blocks = self.layout.blocks(slices)
            for slot, rows in self.groups:
                mask[rows, blocks[slot]] = 1
            self.masks[key] = mask
        return self.masks[key]


class GroupedPunicaWrapperCPU(PunicaWrapperCPU):
    """PunicaWrapperCPU whose linear-layer LoRA runs as a few matrix products per layer."""

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

    def update_metadata(
        self, mapping: Any, lora_index_to_id: list[int | None], max_loras: int, vocab_size: int, **kwargs: Any
    ) -> None:
        super().update_metadata(mapping, lora_index_to_id, max_loras, vocab_size, **kwargs)
        slots = tuple(slot for slot, lora_id in enumerate(lora_index_to_id) if lora_id is not None)
        if self.layout is None or self.layout.slots != slots:
            ranks = tuple(self.slot_ranks.get(slot, 0) for slot in slots)
            self.layout = SlotLayout(slots, ranks)
            self.weights.clear()
        self.plan = BatchPlan.build(self.token_lora_indices, self.layout)
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
        usable = plan is not None and plan.layout is self.layout and x.shape[0] == plan.tokens and 0 not in plan.layout.ranks
        if not usable:
            super().add_lora_linear(y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, buffer=buffer, **kwargs)
            return
        assert plan is not None
        if not plan.groups:
            return
        weights = self._layer_weights(lora_a_stacked, out.dtype)
        x = x.to(out.dtype)
        slices = len(output_slices)
        if plan.grouped:
            b_blocks = self._blocks(weights, lora_b_stacked, output_slices)
            blocks = plan.layout.blocks(slices)
            for slot, rows in plan.groups:
                block = blocks[slot]
                delta = (x[rows] @ weights.a_all[:, block]) @ b_blocks[block]
                if isinstance(rows, slice):
                    out[rows].add_(delta, alpha=scale)
                else:
                    out.index_add_(0, rows, delta, alpha=scale)
            return
        hidden = (x @ weights.a_all).mul_(plan.mask(slices, out.dtype))
        if slices == 1:
            out.addmm_(hidden, self._slices(weights, lora_b_stacked, output_slices)[0], alpha=scale)
            return
        b_slices = self._slices(weights, lora_b_stacked, output_slices)
        assert weights.slice_major is not None
        hidden = hidden.index_select(1, weights.slice_major)
        width, offset = hidden.shape[1] // slices, 0
        for index, (size, b_slice) in enumerate(zip(output_slices, b_slices, strict=True)):
            out[:, offset : offset + size].addmm_(hidden[:, index * width : (index + 1) * width], b_slice, alpha=scale)
            offset += size

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

    def _layer_weights(self, lora_a_stacked: tuple[torch.Tensor, ...], dtype: torch.dtype) -> LayerWeights:
        key = lora_a_stacked[0].data_ptr()
        if key not in self.weights:
            assert self.layout is not None
            a_columns = [
                lora_a[slot, 0, :rank].T
                for slot, rank in zip(self.layout.slots, self.layout.ranks, strict=True)
                for lora_a in lora_a_stacked
            ]
            self.weights[key] = LayerWeights(torch.cat(a_columns, dim=1).to(dtype).contiguous())
        return self.weights[key]

    def _blocks(
        self, weights: LayerWeights, lora_b_stacked: tuple[torch.Tensor, ...], output_slices: tuple[int, ...]
    ) -> torch.Tensor:
        if len(output_slices) == 1:
            return self._slices(weights, lora_b_stacked, output_slices)[0]
        if weights.b_blocks is None:
            assert self.layout is not None
            dtype, b_rows = weights.a_all.dtype, []
            for slot, rank in zip(self.layout.slots, self.layout.ranks, strict=True):
                for index, lora_b in enumerate(lora_b_stacked):
                    b_block = weights.a_all.new_zeros(rank, sum(output_slices), dtype=dtype)
                    offset, size = sum(output_slices[:index]), output_slices[index]
                    b_block[:, offset : offset + size] = lora_b[slot, 0, :size, :rank].T
                    b_rows.append(b_block)
            weights.b_blocks = torch.cat(b_rows).contiguous()
        return weights.b_blocks

    def _slices(
        self, weights: LayerWeights, lora_b_stacked: tuple[torch.Tensor, ...], output_slices: tuple[int, ...]
    ) -> tuple[torch.Tensor, ...]:
        if not weights.b_slices:
            assert self.layout is not None
            slots = list(zip(self.layout.slots, self.layout.ranks, strict=True))
            weights.b_slices = tuple(
                torch.cat([lora_b[slot, 0, :size, :rank].T for slot, rank in slots]).to(weights.a_all.dtype).contiguous()
                for lora_b, size in zip(lora_b_stacked, output_slices, strict=True)
            )
            # Slot-major columns are [slot][slice][rank]; the masked path wants [slice][slot][rank].
            starts = torch.tensor([0, *self.layout.ranks]).cumsum(0)[:-1] * len(output_slices)
            weights.slice_major = torch.cat(
                [
                    torch.arange(rank) + start + index * rank
                    for index in range(len(output_slices))
                    for start, rank in zip(starts.tolist(), self.layout.ranks, strict=True)
                ]
            )
        return weights.b_slices


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


def register() -> None:
    """vLLM general plugin: active only where the platform's engine set ENABLE_ENV (not in the
    benchmark's stock vLLM server, which shares this virtualenv)."""
    if os.environ.get(ENABLE_ENV) != "1":
        return
    from vllm.lora.model_manager import LoRAModelManager
    from vllm.platforms.cpu import CpuPlatform

    if getattr(LoRAModelManager.activate_adapter, "__module__", "") == __name__:
        return
    CpuPlatform.get_punica_wrapper = classmethod(lambda cls: f"{__name__}.GroupedPunicaWrapperCPU")
    LoRAModelManager.activate_adapter = _activate_adapter_hook(LoRAModelManager.activate_adapter)
