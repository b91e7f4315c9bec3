"""Gateway logic of /v1/chat/completions over a fake engine: wire shapes, SSE framing, validation."""

from __future__ import annotations

import asyncio
import json

from litestar.testing import TestClient

from engines.adapters import Adapter
from engines.core.errors import InvalidRequestError
from engines.errors import EngineUnavailableError
from gateway.services import Services
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine


def chat(client: TestClient, **body: object):
    payload = {"model": BASE, "messages": [{"role": "user", "content": "Hi"}], **body}
    return client.post("/v1/chat/completions", json=payload)


def sse_events(response) -> list[str]:
    return [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]


def test_completion_has_openai_shape(client: TestClient) -> None:
    response = chat(client)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == BASE
    choice = body["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"content": "Hello there friend", "refusal": None, "role": "assistant"},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert response.headers["x-request-id"]


def test_max_tokens_gives_length(client: TestClient) -> None:
    body = chat(client, max_tokens=2).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_n_choices(client: TestClient) -> None:
    body = chat(client, n=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 9


def test_stream_framing(client: TestClient) -> None:
    response = chat(client, stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello there friend"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_stream_without_usage_has_no_usage_field(client: TestClient) -> None:
    chunks = [json.loads(e) for e in sse_events(chat(client, stream=True))[:-1]]
    assert all("usage" not in c for c in chunks)


def test_logprobs(client: TestClient) -> None:
    body = chat(client, logprobs=True, top_logprobs=1).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert content[0]["token"] == "Hello"
    assert content[0]["bytes"] == list(b"Hello")
    assert content[0]["top_logprobs"][0]["logprob"] == -0.5


def test_named_tool_choice_returns_tool_call(engine: FakeEngine, client: TestClient) -> None:
    engine.reply = '{"city": "Paris"}'
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    body = chat(client, tools=tools, tool_choice={"type": "function", "function": {"name": "weather"}}).json()
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert message["tool_calls"][0]["id"].startswith("call_")
    assert engine.requests[-1].sampling.json_schema == {"type": "object"}


def test_required_tool_choice(engine: FakeEngine, client: TestClient) -> None:
    engine.reply = '[{"name": "weather", "parameters": {"city": "Oslo"}}]'
    tools = [{"type": "function", "function": {"name": "weather"}}]
    body = chat(client, tools=tools, tool_choice="required").json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_messages_reach_engine_in_template_shape(engine: FakeEngine, client: TestClient) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert chat(client, messages=messages, unknown_field=True, user="u1").status_code == 200
    sent = engine.requests[-1].messages
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1] == {"role": "user", "content": "a\nb"}
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert sent[3] == {"role": "tool", "content": "42", "tool_call_id": "c1"}


def assert_error(response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


def test_invalid_json(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, code="invalid_json")


def test_missing_and_mistyped_fields(client: TestClient) -> None:
    assert_error(client.post("/v1/chat/completions", json={"model": BASE}), 400, param="messages")
    assert_error(chat(client, messages=[]), 400, param="messages")
    assert_error(chat(client, temperature=-1), 400, param="temperature")
    assert_error(chat(client, temperature="hot"), 400, param="temperature")
    assert_error(chat(client, n=99), 400, param="n")
    assert_error(chat(client, top_logprobs=2), 400, param="logprobs")
    assert_error(chat(client, stream_options={"include_usage": True}), 400, param="stream_options")
    assert_error(chat(client, logit_bias={"abc": 1}), 400, param="logit_bias")
    assert_error(chat(client, messages=[{"role": "wizard", "content": "x"}]), 400)
    assert_error(chat(client, tool_choice="required"), 400, param="tool_choice")


def test_non_text_content_is_refused(client: TestClient) -> None:
    part = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    assert_error(chat(client, messages=[{"role": "user", "content": [part]}]), 400, param="messages[0].content[0].type")


def test_unknown_model_route_and_method(client: TestClient) -> None:
    assert_error(chat(client, model="nope"), 404, param="model", code="model_not_found")
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/chat/completions"), 405)


def test_engine_errors_map_to_status(engine: FakeEngine, client: TestClient) -> None:
    engine.error = InvalidRequestError("too long", param="messages", code="context_length_exceeded")
    assert_error(chat(client), 400, param="messages", code="context_length_exceeded")
    assert_error(chat(client, stream=True), 400, code="context_length_exceeded")
    engine.error = EngineUnavailableError("busy")
    response = chat(client)
    assert_error(response, 503)
    assert response.headers["retry-after"]


def test_unexpected_error_is_500_without_trace(engine: FakeEngine, client: TestClient) -> None:
    engine.error = RuntimeError("secret internals")  # type: ignore[assignment]
    error = assert_error(chat(client), 500)
    assert "secret" not in error["message"] and "Traceback" not in error["message"]


def test_seed_chat_route(client: TestClient) -> None:
    response = client.post("/chat", json={"prompt": "Hi", "max_tokens": 8})
    assert response.status_code == 200
    assert response.json()["text"] == "Hello there friend"
    response = client.post("/chat", json={"prompt": "Hi", "adapter_path": "/etc"})
    assert_error(response, 400, param="adapter_path")
    assert_error(client.post("/chat", json={"prompt": "Hi", "adapter": "nope"}), 404, code="model_not_found")


def test_health(engine: FakeEngine, client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    engine.healthy = False
    assert_error(client.get("/health"), 503)


def test_engine_failure_mid_stream_ends_with_an_error_event(engine: FakeEngine, client: TestClient) -> None:
    engine.fail_after_chunks = 1
    response = chat(client, stream=True)
    assert response.status_code == 200
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "service_unavailable" and error["message"]


def test_an_unexpected_error_mid_stream_still_ends_the_stream(engine: FakeEngine, client: TestClient) -> None:
    """Any failure, not only the engine's own errors, ends with an error event in the envelope and [DONE]."""
    engine.fail_after_chunks = 1
    engine.mid_stream_failure = RuntimeError("a Ray object went missing")
    events = sse_events(chat(client, stream=True))
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    assert "Ray" not in error["message"]  # no internals leak into the stream


def test_adapter_look_ups_are_cached_and_off_the_event_loop(client: TestClient, services: Services) -> None:
    store = services.store
    name = f"ft:{BASE}:local::ftjob-1"
    store.add_model(Adapter(name=name, path="/adapters/x", parent=BASE, owner="local", created=1, job_id="ftjob-1"))
    reads: list[bool] = []
    list_models = store.list_models

    def counted() -> list[Adapter]:
        try:
            asyncio.get_running_loop()
            reads.append(True)  # called on the event loop
        except RuntimeError:
            reads.append(False)
        return list_models()

    services.models.adapters.sources = [counted]  # the store's models, counted
    for _ in range(5):
        assert chat(client, model=name).status_code == 200
    assert reads == [False]
