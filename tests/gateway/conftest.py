from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from engines.core.settings import Settings
from engines.resources import plan_resources
from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.serving.models import BaseModelInfo
from tests.gateway.fakes import FakeEngine
from tests.jobs.fakes import FakeLauncher

BASE = "base-model"
BASE_INFO = BaseModelInfo(id=BASE, root="/models/base", created=1, max_model_len=256)
PLAN = plan_resources({"CPU": 2}, engine_replicas=1, engine_cpus=1, inference_gpu_fraction=0.6, training_gpu_fraction=0.4)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), model_name=BASE, max_n=4, max_upload_bytes=4096)


@pytest.fixture
def adapters_dir(settings: Settings) -> Path:
    settings.adapters_path.mkdir(parents=True)
    return settings.adapters_path


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def services(settings: Settings, adapters_dir: Path, launcher: FakeLauncher) -> Services:
    return build_services(settings, PLAN, BASE_INFO, launcher=launcher)


@pytest.fixture
def client(engine: FakeEngine, settings: Settings, services: Services) -> Iterator[TestClient]:
    app = create_app(settings, engine, services)
    with TestClient(app) as test_client:
        yield test_client
