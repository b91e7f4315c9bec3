"""Gateway logic of /v1/responses over a fake engine: input items as chat messages, the response object, the
event stream, and what a stateless platform refuses."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine


def respond(client: TestClient, **body: object):
    return client.post("/v1/responses", json={"model": BASE, "input": "Hi", **body})


def events(response) -> list[tuple[str, dict]]:
    parsed = []
    for block in response.text.strip().split("\n\n"):
        kind_line, data_line = block.split("\n")
        parsed.append((kind_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return parsed


def test_response_object(client: TestClient, engine: FakeEngine) -> None:
    response = respond(client, instructions="Be brief.", max_output_tokens=50, metadata={"run": "1"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "response" and body["id"].startswith("resp_") and body["status"] == "completed"
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"] == [{"text": "Hello there friend", "type": "output_text", "annotations": [], "logprobs": []}]
    assert body["usage"]["input_tokens"] == 7 and body["usage"]["output_tokens"] == 3 and body["usage"]["total_tokens"] == 10
    assert body["instructions"] == "Be brief." and body["metadata"] == {"run": "1"} and body["store"] is False
    assert engine.requests[0].messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert engine.requests[0].sampling.max_tokens == 50


def test_max_output_tokens_reached_is_incomplete(client: TestClient) -> None:
    body = respond(client, max_output_tokens=2).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_input_items_become_chat_messages(client: TestClient, engine: FakeEngine) -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    assert respond(client, input=items).status_code == 200
    assert engine.requests[0].messages == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]


def test_named_tool_choice_gives_a_function_call(client: TestClient, engine: FakeEngine) -> None:
    engine.reply = '{"city": "Paris"}'
    tool = {
        "type": "function",
        "name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    body = respond(client, tools=[tool], tool_choice={"type": "function", "name": "weather"}).json()
    [call] = body["output"]
    assert call["type"] == "function_call" and call["name"] == "weather" and call["call_id"].startswith("call_")
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert engine.requests[0].sampling.json_schema is not None


def test_text_format_json_schema_constrains_the_output(client: TestClient, engine: FakeEngine) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    respond(client, text={"format": {"type": "json_schema", "name": "thing", "schema": schema}})
    assert engine.requests[0].sampling.json_schema == schema


def test_stream_events(client: TestClient) -> None:
    response = respond(client, stream=True)
    assert response.status_code == 200
    parsed = events(response)
    kinds = [kind for kind, _ in parsed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in parsed] == list(range(len(parsed)))
    assert all(kind == data["type"] for kind, data in parsed)
    deltas = "".join(data["delta"] for kind, data in parsed if kind == "response.output_text.delta")
    assert deltas == "Hello there friend"
    final = parsed[-1][1]["response"]
    assert final["output"][0]["content"][0]["text"] == deltas and final["usage"]["output_tokens"] == 3


def test_failure_mid_stream_is_an_error_event(client: TestClient, engine: FakeEngine) -> None:
    engine.fail_after_chunks = 1
    kinds = [kind for kind, _ in events(respond(client, stream=True))]
    assert kinds[-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input[0].content[0].type"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ],
)
def test_invalid_requests_get_openai_errors(client: TestClient, body: dict, param: str) -> None:
    response = respond(client, **body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
