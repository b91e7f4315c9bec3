"""vLLM's tokenizer routes over a fake engine: shapes, defaults, model checks."""

from __future__ import annotations

from litestar.testing import TestClient

from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine


def test_tokenize_a_prompt(client: TestClient, engine: FakeEngine) -> None:
    response = client.post("/tokenize", json={"model": BASE, "prompt": "hi", "return_token_strs": True})
    assert response.status_code == 200
    assert response.json() == {"count": 2, "max_model_len": 256, "tokens": [104, 105], "token_strs": ["h", "i"]}
    assert engine.tokenized[0].add_special_tokens, "a prompt gets the tokenizer's special tokens by default"


def test_tokenize_messages_with_the_template(client: TestClient, engine: FakeEngine) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    body = client.post("/tokenize", json={"messages": messages}).json()
    assert body["count"] == 2 and body["token_strs"] is None
    request = engine.tokenized[0]
    assert request.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert not request.add_special_tokens and request.add_generation_prompt


def test_tokenize_needs_exactly_one_of_prompt_and_messages(client: TestClient) -> None:
    for body in ({}, {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}):
        response = client.post("/tokenize", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_detokenize(client: TestClient) -> None:
    assert client.post("/detokenize", json={"model": BASE, "tokens": [104, 105]}).json() == {"prompt": "hi"}
    assert client.post("/detokenize", json={"tokens": [-1]}).status_code == 400


def test_unknown_model_is_404(client: TestClient) -> None:
    for path, body in (("/tokenize", {"prompt": "a"}), ("/detokenize", {"tokens": [1]})):
        response = client.post(path, json={"model": "nope", **body})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"


def test_tokenizer_info(client: TestClient) -> None:
    assert client.get("/tokenizer_info").json()["tokenizer_class"] == "FakeTokenizer"


def test_ids_past_the_vocabulary_are_a_400(client: TestClient) -> None:
    response = client.post("/detokenize", json={"tokens": [0x110000]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "tokens"
