"""LlamaIndex against the real stack: `OpenAILike` with its defaults calls `/v1/completions`; `OpenAIEmbedding`
feeds a vector index whose query engine answers through the chat model. LlamaIndex runs in `.venv-clients`
(`make test` builds it), since it pins an older openai SDK than this project."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"


def test_openai_like_and_openai_embedding(platform: Platform) -> None:
    assert CLIENTS_PYTHON.exists(), "LlamaIndex lives in .venv-clients: run `make test` (or `make clients`)"
    script = Path(__file__).with_name("llamaindex_client.py")
    args = [f"{platform.url}/v1", BASE_MODEL, "sentence-transformers/all-MiniLM-L6-v2"]
    done = subprocess.run([CLIENTS_PYTHON, script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["completion"].strip() and got["streamed"] == got["completion"]
    assert "Paris" in got["chat"]
    assert got["dimensions"] == 384
    assert got["retrieved"] == "mascot"
    assert "Ada" in got["rag"], got["rag"]
