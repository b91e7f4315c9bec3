"""The layers import downward only: gateway -> jobs -> engines -> engines.core. Each layer's modules are
imported in a fresh interpreter, which must then hold no module of a higher layer."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["engines.core", "engines", "jobs", "gateway"]
"""Lowest first."""

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("engines", "jobs", "gateway"))))
"""


def layer_of(module: str) -> str:
    return max((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), key=len)


def modules_of(layer: str) -> list[str]:
    folder = ROOT.joinpath(*layer.split("."))
    names = [f"{layer}.{info.name}" for info in pkgutil.iter_modules([str(folder)])]
    # A layer's modules, without the subpackage that is a lower layer of its own.
    return [layer, *(name for name in names if layer_of(name) == layer and name != "gateway.__main__")]


def higher_layers_loaded(layer: str, modules: list[str]) -> list[str]:
    """Imports `modules` in a fresh interpreter; returns the loaded modules of layers above `layer`."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    allowed = LAYERS[: LAYERS.index(layer) + 1]
    # A subpackage's parent package is loaded with it (engines/__init__.py, empty), not a layer import.
    return [module for module in loaded if layer_of(module) not in allowed and not layer.startswith(module + ".")]


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_no_higher_layer(layer: str) -> None:
    modules = modules_of(layer)
    assert len(modules) > 1
    higher = higher_layers_loaded(layer, modules)
    assert not higher, f"importing {layer} loads higher layers: {higher}"


def test_the_check_sees_a_higher_import() -> None:
    assert higher_layers_loaded("engines.core", ["engines.core.errors", "gateway.errors"])


LIGHT = ["gateway.launcher", "gateway.deployment", "engines.deployment", "jobs.control_plane", "jobs.runner"]
"""What the launcher, the gateway replicas and the control plane import: Serve pickles a deployment class by
reference, so a replica imports the module that defines it."""
HEAVY = ("torch", "vllm", "transformers", "trl", "peft", "datasets", "ray.train")
HEAVY_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m in HEAVY)))
""".replace("HEAVY", repr(HEAVY))


def test_the_processes_that_do_not_run_models_never_import_the_model_stack() -> None:
    """Each of these imports cost the platform's start seconds of CPU beside the starting engine; vLLM and the
    training stack are imported only in the engine's and the trainers' processes."""
    done = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE, *LIGHT], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []
