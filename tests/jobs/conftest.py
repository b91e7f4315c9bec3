"""Fixtures shared by the jobs tests: the local base model, skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

MODEL_DIR = Path(__file__).resolve().parents[2] / "var" / "cache" / "SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not (MODEL_DIR / "config.json").is_file():
        pytest.skip(f"base model not found at {MODEL_DIR}")
    return MODEL_DIR


@pytest.fixture(scope="session")
def tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(model_dir)
