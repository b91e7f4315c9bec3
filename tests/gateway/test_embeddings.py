"""`/v1/embeddings` over a fake embedder: OpenAI's shapes, both encodings, input kinds, model checks."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from engines.core.settings import Settings
from gateway.app import create_app
from gateway.services import build_services
from gateway.serving.models import BaseModelInfo
from tests.gateway.conftest import BASE, BASE_INFO, PLAN
from tests.gateway.fakes import FakeEmbedder, FakeEngine
from tests.jobs.fakes import FakeLauncher

EMBEDDING = "embedding-model"


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def client(engine: FakeEngine, settings: Settings, adapters_dir: object, embedder: FakeEmbedder) -> Iterator[TestClient]:
    info = BaseModelInfo(id=EMBEDDING, root="/models/embedding", created=2, max_model_len=256)
    services = build_services(settings, PLAN, BASE_INFO, launcher=FakeLauncher(), embedding=info)
    with TestClient(create_app(settings, engine, services, embedder=embedder)) as test_client:
        yield test_client


def test_a_text_is_embedded_in_openais_shape(client: TestClient) -> None:
    response = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": "hey"})
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [3.0, 104.0, 0.5]}],
        "model": EMBEDDING,
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def test_base64_is_little_endian_float32(client: TestClient) -> None:
    body = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": ["ab", "c"], "encoding_format": "base64"}).json()
    vectors = [struct.unpack("<3f", base64.b64decode(item["embedding"])) for item in body["data"]]
    assert vectors == [(2.0, 97.0, 0.5), (1.0, 99.0, 0.5)]
    assert [item["index"] for item in body["data"]] == [0, 1]


def test_token_ids_go_to_the_model_as_they_are(client: TestClient, embedder: FakeEmbedder) -> None:
    single = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": [7, 8, 9]}).json()
    assert single["data"][0]["embedding"] == [3.0, 7.0, 0.5]
    several = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": [[5], [6, 6]]}).json()
    assert [item["embedding"][:2] for item in several["data"]] == [[1.0, 5.0], [2.0, 6.0]]
    assert embedder.requests[-1].token_ids == [[5], [6, 6]] and not embedder.requests[-1].texts


@pytest.mark.parametrize(
    "value",
    ["", [], ["a", ""], ["a", 1], [[1], "a"], [[]], [-1], [[1, True]], 5, None],
    ids=["empty", "empty-list", "empty-item", "mixed", "mixed-lists", "empty-ids", "negative", "bool", "number", "null"],
)
def test_bad_input_is_a_400_naming_input(client: TestClient, value: object) -> None:
    response = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and (error["param"] or "input").startswith("input"), error


def test_dimensions_the_model_cannot_make_are_a_400(client: TestClient) -> None:
    assert client.post("/v1/embeddings", json={"model": EMBEDDING, "input": "a", "dimensions": 3}).status_code == 200
    response = client.post("/v1/embeddings", json={"model": EMBEDDING, "input": "a", "dimensions": 2})
    assert response.status_code == 400 and response.json()["error"]["param"] == "dimensions"


def test_models_are_checked(client: TestClient) -> None:
    chat_model = client.post("/v1/embeddings", json={"model": BASE, "input": "a"})
    assert chat_model.status_code == 400 and EMBEDDING in chat_model.json()["error"]["message"]
    assert client.post("/v1/embeddings", json={"model": "nope", "input": "a"}).status_code == 404
    chat = client.post("/v1/chat/completions", json={"model": EMBEDDING, "messages": [{"role": "user", "content": "a"}]})
    assert chat.status_code == 400 and "/v1/embeddings" in chat.json()["error"]["message"]
    completion = client.post("/v1/completions", json={"model": EMBEDDING, "prompt": "a"})
    assert completion.status_code == 400


def test_the_embedding_model_is_listed(client: TestClient) -> None:
    listed = {model["id"]: model for model in client.get("/v1/models").json()["data"]}
    assert set(listed) == {BASE, EMBEDDING} and listed[EMBEDDING]["max_model_len"] == 256
    assert client.get(f"/v1/models/{EMBEDDING}").json()["id"] == EMBEDDING


def test_without_an_embedding_model_the_route_says_so(settings: Settings, services: object, engine: FakeEngine) -> None:
    from gateway.services import Services

    assert isinstance(services, Services)
    with TestClient(create_app(settings, engine, services)) as test_client:
        response = test_client.post("/v1/embeddings", json={"model": BASE, "input": "a"})
    assert response.status_code == 400 and "serves none" in response.json()["error"]["message"]
