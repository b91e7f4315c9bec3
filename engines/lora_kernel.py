"""The C kernel behind mixed-adapter decode steps (`lora_kernel.c`), compiled for this node's CPU on first use.

PyTorch's batched products for eight adapters among eight decode tokens cost about three times the time it
takes to read those adapters' weights (`python -m bench.lora_floor`): each of the ~120 LoRA layer calls of a
step is six to eight small operations, and their dispatch, not the arithmetic, is most of it. The kernel does
one layer call in one C call: one pass over each adapter's weights, its tokens read in place, the deltas added
to their rows. It is compiled with the system's C compiler (`cc`, a fraction of a second) into a node-local
directory, once per source and flags; without a compiler the engine keeps the PyTorch products.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import torch

from engines.cpu_binding import node_state_dir

SOURCE = Path(__file__).with_name("lora_kernel.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math")
"""Reassociation lets the compiler vectorize the dot products' sums: the deltas' rounding may differ from
PyTorch's in the last bits, as between two BLAS builds."""
MAX_SLICES = 4

logger = logging.getLogger(__name__)


class _Plan(ctypes.Structure):
    _fields_ = [
        ("groups", ctypes.c_int64),
        ("adapters", ctypes.c_void_p),
        ("offsets", ctypes.c_void_p),
        ("rows", ctypes.c_void_p),
    ]


class _Layer(ctypes.Structure):
    _fields_ = [
        ("a", ctypes.c_void_p),
        ("b", ctypes.c_void_p * MAX_SLICES),
        ("sizes", ctypes.c_int64 * MAX_SLICES),
        ("inputs", ctypes.c_int64),
        ("slices", ctypes.c_int64),
        ("rank", ctypes.c_int64),
    ]


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None where this node has no C compiler (or it failed: logged once)."""
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        logger.warning("no C compiler (cc): mixed-adapter steps use PyTorch's products")
        return None
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), compiler.encode()])).hexdigest()[:16]
    target = node_state_dir() / f"lora-kernel-{digest}.so"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        command = [compiler, *FLAGS, "-fPIC", "-shared", "-o", str(partial), str(SOURCE)]
        built = subprocess.run(command, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            logger.warning("the LoRA kernel did not compile, PyTorch's products are used: %s", built.stderr[-2000:])
            return None
        os.replace(partial, target)  # replicas compiling at once each rename a whole file
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as exc:  # e.g. a temporary directory mounted noexec
        logger.warning("the LoRA kernel did not load, PyTorch's products are used: %s", exc)
        return None
    lib.lora_shrink_expand.argtypes = [
        ctypes.POINTER(_Plan),
        ctypes.POINTER(_Layer),
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_float,
    ]
    lib.lora_shrink_expand.restype = None
    return lib


class KernelPlan:
    """One step's groups (an adapter's position in the stacked weights and its token rows), as the kernel reads
    them; the tensors live as long as the plan."""

    def __init__(self, groups: list[tuple[int, torch.Tensor]]) -> None:
        self.adapters = torch.tensor([position for position, _ in groups], dtype=torch.int64)
        self.offsets = torch.tensor([0, *(len(rows) for _, rows in groups)], dtype=torch.int64).cumsum(0)
        self.rows = torch.cat([rows for _, rows in groups]).to(torch.int64)
        self.struct = _Plan(len(groups), self.adapters.data_ptr(), self.offsets.data_ptr(), self.rows.data_ptr())


class KernelLayer:
    """One linear layer's stacked weights as the kernel reads them: A [adapters, slices x rank, in] and, per
    output slice, B [adapters, rank, size]; all float32 and contiguous."""

    def __init__(self, a: torch.Tensor, b_slices: tuple[torch.Tensor, ...]) -> None:
        assert len(b_slices) <= MAX_SLICES and all(b.is_contiguous() for b in (a, *b_slices))
        self.a, self.b_slices = a, b_slices
        pointers = [b.data_ptr() for b in b_slices] + [0] * (MAX_SLICES - len(b_slices))
        sizes = [b.shape[2] for b in b_slices] + [0] * (MAX_SLICES - len(b_slices))
        self.struct = _Layer(
            a.data_ptr(),
            (ctypes.c_void_p * MAX_SLICES)(*pointers),
            (ctypes.c_int64 * MAX_SLICES)(*sizes),
            a.shape[2],
            len(b_slices),
            b_slices[0].shape[1],
        )


def shrink_expand(
    lib: ctypes.CDLL, plan: KernelPlan, layer: KernelLayer, x: torch.Tensor, y: torch.Tensor, scale: float
) -> None:
    """y[rows] += scale * (x[rows] @ A^T) @ B for every group of `plan`; x and y float32 with unit column stride."""
    lib.lora_shrink_expand(
        ctypes.byref(plan.struct), ctypes.byref(layer.struct), x.data_ptr(), x.stride(0), y.data_ptr(), y.stride(0), scale
    )
