"""The LoRA kernel against PyTorch's products, its build, and the engine without a C compiler."""

from __future__ import annotations

import pytest
import torch

from engines import lora_kernel

ADAPTERS, RANK, IN = 3, 4, 40
SIZES = (24, 8, 8)


@pytest.fixture
def library():
    lib = lora_kernel.library()
    assert lib is not None, "the test machine has a C compiler: the kernel must build"
    return lib


def weights(seed: int = 0) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(ADAPTERS, len(SIZES) * RANK, IN, generator=generator)
    return a, tuple(torch.randn(ADAPTERS, RANK, size, generator=generator) for size in SIZES)


def expected(x: torch.Tensor, groups: list[tuple[int, list[int]]], a, b_slices, scale: float) -> torch.Tensor:
    delta = torch.zeros(x.shape[0], sum(SIZES))
    for adapter, rows in groups:
        hidden = x[rows] @ a[adapter].T
        parts = [hidden[:, i * RANK : (i + 1) * RANK] @ b[adapter] for i, b in enumerate(b_slices)]
        delta[rows] = scale * torch.cat(parts, dim=1)
    return delta


@pytest.mark.parametrize(
    "groups",
    [
        [(0, [2]), (1, [0]), (2, [1])],  # decode: a token each, rows out of order
        [(2, [0, 3, 4]), (0, [1])],  # several tokens of one adapter, not contiguous
        [(1, [1, 2])],  # one adapter; rows 0 and 3 are the base model's
    ],
)
def test_adds_each_groups_delta_to_its_rows_only(library, groups: list[tuple[int, list[int]]]) -> None:
    a, b_slices = weights()
    x = torch.randn(5, IN)
    base = torch.randn(5, sum(SIZES))
    y = base.clone()
    plan = lora_kernel.KernelPlan([(adapter, torch.tensor(rows)) for adapter, rows in groups])

    lora_kernel.shrink_expand(library, plan, lora_kernel.KernelLayer(a, b_slices), x, y, 0.5)

    torch.testing.assert_close(y, base + expected(x, groups, a, b_slices, 0.5), rtol=1e-5, atol=1e-4)


def test_reads_rows_through_the_inputs_stride(library) -> None:
    """vLLM hands a layer a view whose rows may be longer than its columns."""
    a, b_slices = weights(seed=1)
    wide = torch.randn(2, IN + 7)
    x = wide[:, :IN]
    y = torch.zeros(2, sum(SIZES))
    plan = lora_kernel.KernelPlan([(0, torch.tensor([1])), (2, torch.tensor([0]))])

    lora_kernel.shrink_expand(library, plan, lora_kernel.KernelLayer(a, b_slices), x, y, 1.0)

    torch.testing.assert_close(y, expected(x.contiguous(), [(0, [1]), (2, [0])], a, b_slices, 1.0), rtol=1e-5, atol=1e-4)


def test_is_built_once_per_node_and_source(library) -> None:
    built = sorted(lora_kernel.node_state_dir().glob("lora-kernel-*.so"))
    lora_kernel.library.cache_clear()
    try:
        assert lora_kernel.library() is not None
        assert sorted(lora_kernel.node_state_dir().glob("lora-kernel-*.so")) == built
    finally:
        lora_kernel.library.cache_clear()


def test_without_a_compiler_there_is_no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    lora_kernel.library.cache_clear()
    try:
        assert lora_kernel.library() is None
    finally:
        lora_kernel.library.cache_clear()
