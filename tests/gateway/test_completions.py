"""Gateway logic of /v1/completions over a fake engine: prompts, choice numbering, echo and legacy logprobs,
SSE framing, validation."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from engines.errors import EngineUnavailableError
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine
from tests.gateway.test_chat import sse_events


def complete(client: TestClient, **body: object):
    return client.post("/v1/completions", json={"model": BASE, "prompt": "Once upon", **body})


def test_completion_has_openai_shape(client: TestClient, engine: FakeEngine) -> None:
    response = complete(client)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"] == [{"index": 0, "text": "Hello there friend", "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert engine.requests[0].prompt == "Once upon"
    assert engine.requests[0].sampling.max_tokens == 16, "OpenAI's default"


@pytest.mark.parametrize(
    ("prompt", "engine_prompts"),
    [
        ("a", ["a"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
        (None, [""]),
    ],
)
def test_every_prompt_shape_is_one_engine_request_per_prompt(
    client: TestClient, engine: FakeEngine, prompt: object, engine_prompts: list
) -> None:
    assert client.post("/v1/completions", json={"model": BASE, "prompt": prompt}).status_code == 200
    assert [request.prompt for request in engine.requests] == engine_prompts


def test_choices_are_numbered_prompt_by_prompt_n_per_prompt(client: TestClient) -> None:
    body = complete(client, prompt=["a", "b"], n=2).json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26}


def test_echo_with_logprobs_has_the_prompt_tokens_first_without_a_logprob(client: TestClient) -> None:
    body = complete(client, echo=True, logprobs=1, max_tokens=2).json()
    choice = body["choices"][0]
    assert choice["text"] == "Once upon" + "Hello there"
    logprobs = choice["logprobs"]
    assert logprobs["tokens"] == ["Once", " upon", "Hello", " there"]
    assert logprobs["token_logprobs"] == [None, -1.0, -0.5, -0.5]
    assert logprobs["top_logprobs"][0] is None
    assert logprobs["top_logprobs"][1] == {" upon": -1.0}
    assert logprobs["text_offset"] == [0, 4, 9, 14]


def test_echo_without_completion_returns_the_prompt_only(client: TestClient) -> None:
    body = complete(client, echo=True, logprobs=0, max_tokens=0).json()
    choice = body["choices"][0]
    assert choice["text"] == "Once upon"
    assert choice["finish_reason"] == "length"
    assert choice["logprobs"]["token_logprobs"] == [None, -1.0]
    assert body["usage"]["completion_tokens"] == 0


def test_stream_framing_and_usage(client: TestClient) -> None:
    response = complete(client, stream=True, stream_options={"include_usage": True}, echo=True)
    assert response.status_code == 200
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    text = "".join(choice["text"] for chunk in chunks for choice in chunk["choices"])
    assert text == "Once upon" + "Hello there friend"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"best_of": 1, "n": 2}, "best_of"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"n": 3, "prompt": ["a", "b"]}, "n"),
        ({"logprobs": 6}, None),
        ({"prompt": []}, None),
        ({"prompt": [1, "a"]}, "prompt"),
        ({"prompt": [[1], []]}, "prompt[1]"),
    ],
)
def test_invalid_requests_get_openai_errors(client: TestClient, body: dict, param: str | None) -> None:
    response = complete(client, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/v1/completions", json={"model": "nope", "prompt": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_engine_failure_before_the_first_token_is_a_status(client: TestClient, engine: FakeEngine) -> None:
    engine.error = EngineUnavailableError("down")
    response = complete(client, stream=True)
    assert response.status_code == 503


def test_failure_mid_stream_ends_the_stream_with_an_error_event(client: TestClient, engine: FakeEngine) -> None:
    engine.fail_after_chunks = 1
    events = sse_events(complete(client, stream=True, prompt=["a", "b"]))
    assert events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])
