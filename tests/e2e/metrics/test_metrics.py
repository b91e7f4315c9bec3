"""`/metrics` on the real single-node stack: the engine's own gauges, adapters, embeddings, parsed by
prometheus_client. Counts added up over two gateway replicas: tests/e2e/test_scale_out.py."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(platform: Platform) -> Series:
    response = httpx.get(f"{platform.url}/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(series: Series, name: str, **labels: str) -> float:
    return sum(value for (n, ls), value in series.items() if n == name and set(labels.items()) <= ls)


def test_engine_gauges_and_request_series(platform: Platform, client: openai.OpenAI) -> None:
    before = scrape(platform)
    with client.chat.completions.create(
        model=BASE_MODEL,
        messages=[{"role": "user", "content": "Count to twenty."}],
        max_tokens=24,
        stream=True,
        extra_body={"ignore_eos": True},
    ) as stream:
        for _ in stream:
            pass
    client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input="hello there")
    after = scrape(platform)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("llm_requests_total", endpoint="/v1/chat/completions", model=BASE_MODEL, adapter="", status="200") == 1
    assert grew("llm_requests_total", endpoint="/v1/embeddings", status="200") == 1
    assert grew("llm_prompt_tokens_total", model="sentence-transformers/all-MiniLM-L6-v2") == 4  # [CLS] hello there [SEP]
    assert grew("llm_completion_tokens_total", model=BASE_MODEL) == 24
    assert grew("llm_finish_reasons_total", model=BASE_MODEL, reason="length") == 1
    assert grew("llm_inter_token_latency_seconds_count", model=BASE_MODEL) == 23
    deadline = time.monotonic() + 10  # the engine replica reports every 2 s
    while not any(name == "llm_engine_kv_cache_usage_ratio" for name, _ in after) and time.monotonic() < deadline:
        time.sleep(1)
        after = scrape(platform)
    (kv,) = [value for (name, _), value in after.items() if name == "llm_engine_kv_cache_usage_ratio"]
    assert 0.0 <= kv <= 1.0
    assert total(after, "llm_engine_adapters_loaded") >= 0
    assert ("llm_requests_in_flight", frozenset()) in after
