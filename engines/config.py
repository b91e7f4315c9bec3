"""Typed configuration of one engine replica, built from the platform settings and the resource plan."""

from __future__ import annotations

from typing import Literal

import msgspec


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    model_id: str
    """The id clients use for the base model."""
    model_path: str
    """A local model directory (or a hub id where a hub is reachable)."""
    max_model_len: int
    dtype: str
    device: Literal["cpu", "cuda"]
    tensor_parallel_size: int = 1
    kv_cache_gib: int = 2
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = True
    max_loras: int = 8
    max_cpu_loras: int = 32
    max_lora_rank: int = 32
    max_num_seqs: int = 64
    threads: int = 0
    """Compute cores per replica on CPU; 0 shares the node's cores between its replicas."""
    replicas: int = 1
    cpu_binding: bool = True
    """On CPU, bind each replica's compute threads to cores of its own (see engines.cpu_binding)."""
    park_while_training: bool = True
    """On CPU, stop the idle engine while a job trains on its node (see engines.parking)."""
    artifact_store: str = ""
    """ARTIFACT_STORE, where published adapters are; "" is `artifact_default_root`."""
    artifact_default_root: str = ""
    adapter_cache_dir: str = ""
    """This node's copies of published adapters, by digest; "" serves only adapters placed on disk."""
    metrics: bool = True
    """Keep the requests' load (running, waiting, KV-cache use) for the platform's metrics."""

    def resolved_dtype(self) -> str:
        """`auto` means float32 on CPU (4x faster than bfloat16 without AVX-512 BF16), else the model's."""
        if self.dtype != "auto":
            return self.dtype
        return "float32" if self.device == "cpu" else "auto"
