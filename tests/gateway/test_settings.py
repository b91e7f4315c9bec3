from __future__ import annotations

import subprocess
import sys

import pytest

from engines.core.settings import DEFAULT_MODEL_ID, Settings, SettingsError


def test_defaults_follow_the_seed() -> None:
    settings = Settings.from_env({})
    assert settings.model_name == DEFAULT_MODEL_ID
    assert settings.max_model_len == 4096
    assert (settings.serve_host, settings.serve_port) == ("0.0.0.0", 8000)
    assert (settings.inference_gpu_fraction, settings.training_gpu_fraction) == (0.6, 0.4)
    assert settings.dtype == "auto"


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env({"MAX_MODEL_LEN": "2048", "ENFORCE_EAGER": "false", "KV_CACHE_GIB": "3"})
    assert settings.max_model_len == 2048 and settings.enforce_eager is False and settings.kv_cache_gib == 3


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MAX_MODEL_LEN": "abc"}, "MAX_MODEL_LEN"),
        ({"SERVE_PORT": "70000"}, "SERVE_PORT"),
        ({"INFERENCE_GPU_FRACTION": "1.5"}, "INFERENCE_GPU_FRACTION"),
        ({"DTYPE": "int3"}, "DTYPE"),
        ({"MAX_LORA_RANK": "7"}, "MAX_LORA_RANK"),
        ({"INFERENCE_GPU_FRACTION": "0.7", "TRAINING_GPU_FRACTION": "0.5"}, "TRAINING_GPU_FRACTION"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_launcher_fails_fast_with_one_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={"MAX_MODEL_LEN": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "MAX_MODEL_LEN" in result.stderr and "Traceback" not in result.stderr
