from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from engines.adapters import AdapterRegistry
from gateway.app import create_app
from gateway.serving.models import BaseModelInfo, ModelCatalog
from gateway.settings import Settings
from tests.gateway.fakes import FakeEngine

BASE = "base-model"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    path = tmp_path / "adapters"
    path.mkdir()
    return path


@pytest.fixture
def client(engine: FakeEngine, adapters_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=str(adapters_dir.parent), max_n=4)
    registry = AdapterRegistry(adapters_dir, base_model_id=BASE, max_lora_rank=32)
    catalog = ModelCatalog(BaseModelInfo(id=BASE, root="/models/base", created=1, max_model_len=256), registry)
    with TestClient(create_app(settings, engine, catalog)) as test_client:
        yield test_client
