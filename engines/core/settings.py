"""The platform's settings: one typed object read from the environment and validated at startup."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class SettingsError(ValueError):
    """A setting read from the environment is invalid; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Each field is read from the environment variable of the same name in upper case."""

    model_name: str = DEFAULT_MODEL_ID
    max_model_len: Annotated[int, msgspec.Meta(ge=32, le=1_048_576)] = 4096
    serve_host: str = "0.0.0.0"
    serve_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8000
    inference_gpu_fraction: Fraction = 0.6
    training_gpu_fraction: Fraction = 0.4
    data_dir: str = "./var"
    # Where the converted default model is cached; defaults to DATA_DIR/cache.
    model_cache_dir: str = ""
    engine_replicas: PositiveInt = 1
    # CPUs (Ray logical) reserved per engine replica on a cluster without GPUs.
    engine_cpus: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    # Compute cores per engine replica on CPU; 0 shares the node's cores between its replicas.
    engine_threads: Annotated[int, msgspec.Meta(ge=0)] = 0
    # On CPU: keep Ray and the gateway off the engines' compute cores (see engines/cpu_binding.py).
    cpu_binding: bool = True
    # On CPU: stop an idle engine while a fine-tuning job trains on its node (see engines/parking.py).
    park_engine_while_training: bool = True
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # KV-cache space in GiB on CPU (vLLM reads it as a whole number).
    kv_cache_gib: PositiveInt = 2
    gpu_memory_utilization: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
    enforce_eager: bool = True
    max_loras: PositiveInt = 8
    max_cpu_loras: PositiveInt = 32
    max_lora_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = 32
    max_ongoing_requests: PositiveInt = 64
    max_queued_requests: PositiveInt = 256
    max_n: PositiveInt = 16
    max_upload_bytes: PositiveInt = 512 * 1024 * 1024
    max_request_bytes: PositiveInt = 8 * 1024 * 1024
    # Per API key, over a sliding minute; 0 turns a limit off.
    rate_limit_rpm: Annotated[int, msgspec.Meta(ge=0)] = 0
    rate_limit_tpm: Annotated[int, msgspec.Meta(ge=0)] = 0
    gateway_replicas: PositiveInt = 1
    # On a cluster the launcher starts, the gateway replicas listen on SERVE_PORT themselves instead of
    # behind Ray Serve's HTTP proxy (see gateway/listener.py).
    direct_ingress: bool = True
    # Compute threads of one training job; 0 means all cores of the machine.
    training_threads: Annotated[int, msgspec.Meta(ge=0)] = 0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Comma-separated keys, each `key` or `name=key`; or a file with one per line. Unset: open platform.
    api_keys: str = ""
    api_keys_file: str = ""

    def __post_init__(self) -> None:
        if self.inference_gpu_fraction + self.training_gpu_fraction > 1.0 + 1e-9:
            raise SettingsError(
                "INFERENCE_GPU_FRACTION + TRAINING_GPU_FRACTION must not exceed 1 "
                f"(got {self.inference_gpu_fraction} + {self.training_gpu_fraction})"
            )
        if self.max_cpu_loras < self.max_loras:
            raise SettingsError(f"MAX_CPU_LORAS ({self.max_cpu_loras}) must be at least MAX_LORAS ({self.max_loras})")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def cache_path(self) -> Path:
        return Path(self.model_cache_dir).resolve() if self.model_cache_dir else self.data_path / "cache"

    @property
    def adapters_path(self) -> Path:
        """Admin-placed adapters: each folder `DATA_DIR/adapters/<name>/` is served as model `<name>`."""
        return self.data_path / "adapters"

    @property
    def store_path(self) -> Path:
        return self.data_path / "platform.sqlite3"

    @property
    def uses_default_model(self) -> bool:
        return self.model_name == DEFAULT_MODEL_ID

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        names = {field.lower() for field in cls.__struct_fields__}
        values = {name: environ[name.upper()] for name in names if name.upper() in environ}
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_explain(str(exc), values)) from None


def _explain(message: str, values: Mapping[str, str]) -> str:
    """Turns msgspec's `... - at `$.field`` into a message that names the environment variable."""
    match = re.search(r"at `\$\.(\w+)`", message)
    if match is None:
        return f"Invalid settings: {message}"
    field = match.group(1)
    reason = message[: match.start()].rstrip(" -")
    return f"Invalid setting {field.upper()}={values.get(field, '')!r}: {reason}"
