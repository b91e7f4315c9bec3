"""Per-key limits: sliding windows, and their 429 answers through the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from engines.core.settings import Settings
from gateway.app import create_app
from gateway.limits import SlidingWindows
from gateway.services import Services
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine
from tests.gateway.test_chat import assert_error


def test_requests_window_slides() -> None:
    windows = SlidingWindows(requests_per_minute=2, tokens_per_minute=0)
    assert windows.admit_request("a", 0).admitted and windows.admit_request("a", 1).admitted
    refused = windows.admit_request("a", 2)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(58)
    assert windows.admit_request("b", 2).admitted  # another key has its own window
    assert windows.admit_request("a", 60.5).admitted


def test_tokens_window() -> None:
    windows = SlidingWindows(requests_per_minute=0, tokens_per_minute=100)
    assert windows.admit_tokens("a", 50, 0).admitted
    windows.charge_tokens("a", 120, 1)
    assert windows.admit_tokens("a", 10, 2).retry_after_s == pytest.approx(59)
    never = windows.admit_tokens("a", 500, 2)
    assert not never.admitted and never.retry_after_s is None
    assert windows.admit_tokens("a", 10, 61.5).admitted


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"), model_name=BASE, rate_limit_rpm=3, rate_limit_tpm=50, max_request_bytes=2048
    )


@pytest.fixture
def limited(engine: FakeEngine, settings: Settings, services: Services) -> Iterator[TestClient]:
    app = create_app(settings, engine, services)
    with TestClient(app) as client:
        yield client


def test_over_the_limits_is_429(limited: TestClient) -> None:
    body = {"model": BASE, "messages": [{"role": "user", "content": "hi"}]}
    huge = limited.post("/v1/chat/completions", json={**body, "max_tokens": 1000})
    assert_error(huge, 429, code="rate_limit_exceeded")
    assert huge.headers["x-should-retry"] == "false" and huge.headers["retry-after"]
    assert limited.post("/v1/chat/completions", json=body).status_code == 200
    assert limited.get("/v1/models").status_code == 200
    refused = limited.get("/v1/models")
    assert_error(refused, 429, code="rate_limit_exceeded")
    assert int(refused.headers["retry-after"]) >= 1 and "x-should-retry" not in refused.headers
    assert limited.get("/health").status_code == 200


def test_request_body_limit(limited: TestClient) -> None:
    body = {"model": BASE, "messages": [{"role": "user", "content": "x" * 4000}]}
    assert_error(limited.post("/v1/chat/completions", json=body), 413)
