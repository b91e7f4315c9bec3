"""The web console's pages and assets: served by the platform itself, open without a key (what they show comes
from the API, which needs one), off with CONSOLE=false, and nothing in them fetched from another host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from engines.core.settings import Settings
from gateway.app import create_app
from gateway.routes.console import STATIC, SWAGGER_UI
from gateway.services import Services
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine

KEY = "sk-alice-0123456789"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), model_name=BASE, api_keys=f"alice={KEY}", rate_limit_rpm=2)


@pytest.fixture
def secured(engine: FakeEngine, settings: Settings, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine, services)) as client:
        yield client


def test_the_console_loads_without_a_key_and_the_api_behind_it_still_needs_one(secured: TestClient) -> None:
    page = secured.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/app.js">' in page.text
    for asset in ("/console/app.js", "/console/style.css", "/console/pages/job.js", "/console/chart.js"):
        assert secured.get(asset).status_code == 200, asset
    assert secured.get("/v1/models").status_code == 401
    assert secured.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_console_assets_do_not_count_against_the_rate_limit(secured: TestClient) -> None:
    for _ in range(5):
        assert secured.get("/console/app.js").status_code == 200
    headers = {"Authorization": f"Bearer {KEY}"}
    assert [secured.get("/v1/models", headers=headers).status_code for _ in range(3)] == [200, 200, 429]


def test_a_missing_asset_is_a_404_in_the_error_envelope(secured: TestClient) -> None:
    missing = secured.get("/console/nothing-here.js")
    assert missing.status_code == 404
    assert msgspec.json.decode(missing.content)["error"]["type"] == "invalid_request_error"


def test_console_false_serves_no_pages(engine: FakeEngine, tmp_path: Path, services: Services) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), model_name=BASE, console=False)
    with TestClient(create_app(settings, engine, services)) as client:
        assert client.get("/").status_code == 404
        assert client.get("/console/app.js").status_code == 404
        assert client.get("/health").status_code in (200, 503)


def test_swagger_ui_comes_from_the_platform_when_installed(secured: TestClient) -> None:
    if not SWAGGER_UI.is_dir():
        pytest.skip("Swagger UI not installed: `make` installs it from npm into gateway/console/node_modules")
    assert secured.get("/console/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert secured.get("/console/vendor/swagger-ui/swagger-ui.css").status_code == 200


def test_no_asset_points_at_another_host() -> None:
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text().replace(SVG_NAMESPACE, "")  # a name, never fetched
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path
