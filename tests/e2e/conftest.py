from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.platform import Platform

BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    running = Platform(root / "data", root / "platform.log")
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        assert running.stop() == 0
        assert running.wait_gone() == []


@pytest.fixture(scope="session")
def client(platform: Platform) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def data_dir(platform: Platform) -> Path:
    return platform.data_dir
