"""`/metrics` of one gateway over the fake engine: the families, their labels, what a scrape leaves out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from engines.adapters import Adapter
from engines.core.settings import Settings
from gateway.app import create_app
from gateway.metrics import metrics_table
from gateway.services import Services, build_services
from gateway.serving.metrics import CONTENT_TYPE
from tests.gateway.conftest import BASE, BASE_INFO, PLAN
from tests.gateway.fakes import FakeEngine
from tests.jobs.fakes import FakeLauncher

ADAPTER = f"ft:{BASE}:local::ftjob-1"
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Series:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{CONTENT_TYPE}; charset=utf-8"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


def chat(client: TestClient, model: str = BASE, **headers: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return client.post("/v1/chat/completions", json=body, headers=headers).status_code


def test_requests_tokens_latencies_and_finish_reasons(client: TestClient, services: Services) -> None:
    services.store.add_model(Adapter(name=ADAPTER, path="/adapters/x", parent=BASE, owner="local", created=1, job_id="j"))
    assert chat(client) == chat(client) == chat(client, ADAPTER) == 200
    assert chat(client, "no-such-model") == 404
    series = scrape(client)
    base = {"endpoint": "/v1/chat/completions", "model": BASE, "adapter": "", "key": "local", "status": "200"}
    assert value(series, "llm_requests_total", **base) == 2
    assert value(series, "llm_requests_total", **{**base, "adapter": ADAPTER}) == 1
    missing = {"endpoint": "/v1/chat/completions", "model": "", "adapter": "", "key": "local", "status": "404"}
    assert value(series, "llm_requests_total", **missing) == 1, "an unknown model name is not a label value"
    assert value(series, "llm_completion_tokens_total", model=BASE, adapter="", key="local") == 6  # 3 words each
    assert value(series, "llm_prompt_tokens_total", model=BASE, adapter=ADAPTER, key="local") > 0
    assert value(series, "llm_finish_reasons_total", model=BASE, adapter="", reason="stop") == 2
    assert value(series, "llm_time_to_first_token_seconds_count", model=BASE, adapter="") == 2
    assert value(series, "llm_inter_token_latency_seconds_count", model=BASE, adapter="") == 4  # 2 later tokens each
    assert value(series, "llm_request_duration_seconds_count", endpoint="/v1/chat/completions", model=BASE, adapter="") == 2
    assert value(series, "llm_requests_in_flight") == 1  # the scrape itself
    assert sum(v for (name, _), v in series.items() if name == "llm_gateway_requests_total") == 4


def test_series_of_a_deleted_adapter_go_away(client: TestClient, services: Services) -> None:
    services.store.add_model(Adapter(name=ADAPTER, path="/adapters/x", parent=BASE, owner="local", created=1, job_id="j"))
    assert chat(client, ADAPTER) == 200
    assert any(dict(labels).get("adapter") == ADAPTER for _, labels in scrape(client))
    services.models.adapters.sources = [list]  # the adapter model is gone from the store
    services.models.adapters.invalidate()
    assert not any(dict(labels).get("adapter") == ADAPTER for _, labels in scrape(client))


def test_fine_tuning_jobs_by_status(client: TestClient) -> None:
    upload = client.post(
        "/v1/files",
        files={
            "file": (
                "train.jsonl",
                b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n' * 10,
            )
        },
        data={"purpose": "fine-tune"},
    )
    assert upload.status_code == 200, upload.text
    job = client.post("/v1/fine_tuning/jobs", json={"model": BASE, "training_file": upload.json()["id"]})
    assert job.status_code == 200, job.text
    series = scrape(client)
    assert sum(v for (name, _), v in series.items() if name == "llm_fine_tuning_jobs") == 1
    assert value(series, "llm_fine_tuning_trained_tokens_total") == 0


@pytest.fixture
def keyed(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(data_dir=str(tmp_path / "data"), model_name=BASE, api_keys="alice=sk-alice,bob=sk-bob")
    settings.adapters_path.mkdir(parents=True)
    services = build_services(settings, PLAN, BASE_INFO, launcher=FakeLauncher())
    with TestClient(create_app(settings, engine, services)) as test_client:
        yield test_client


def test_keys_are_labelled_by_name_and_the_scrape_needs_one(keyed: TestClient) -> None:
    assert chat(keyed, Authorization="Bearer sk-alice") == 200
    assert chat(keyed, Authorization="Bearer sk-bob") == 200
    assert keyed.get("/metrics").status_code == 401
    series = scrape(keyed, Authorization="Bearer sk-bob")
    keys = {dict(labels)["key"] for name, labels in series if name == "llm_requests_total"}
    assert keys == {"alice", "bob", ""} and not any("sk-" in key for key in keys)  # "": the refused scrape


def test_metrics_off_is_no_route(tmp_path: Path, engine: FakeEngine) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), model_name=BASE, metrics=False)
    settings.adapters_path.mkdir(parents=True)
    services = build_services(settings, PLAN, BASE_INFO, launcher=FakeLauncher())
    with TestClient(create_app(settings, engine, services)) as test_client:
        assert chat(test_client) == 200
        assert test_client.get("/metrics").status_code == 404


def test_readme_lists_every_family() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = readme.index("<!-- metrics:start -->"), readme.index("<!-- metrics:end -->")
    assert readme[start:end].split("-->", 1)[1].strip() == metrics_table().strip(), "run `python -m gateway.metrics`"
