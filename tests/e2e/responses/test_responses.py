"""/v1/responses on the real stack with the openai SDK: text, streaming events as the SDK parses them,
function tools, structured output, and what a stateless platform refuses."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.responses import FunctionToolParam, ResponseFunctionToolCall, ResponseTextDeltaEvent

from tests.e2e.conftest import BASE_MODEL

pytestmark = pytest.mark.e2e
QUESTION = "What is the capital of France?"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": None,
}


def test_text_response(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=BASE_MODEL, input=QUESTION, instructions="Answer in one sentence.", max_output_tokens=40, temperature=0
    )
    assert response.object == "response" and response.status in ("completed", "incomplete")
    assert "Paris" in response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_stream_events_parse_and_add_up(client: openai.OpenAI) -> None:
    expected = client.responses.create(model=BASE_MODEL, input=QUESTION, max_output_tokens=16, temperature=0)
    stream = client.responses.create(model=BASE_MODEL, input=QUESTION, max_output_tokens=16, temperature=0, stream=True)
    events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == f"response.{expected.status}"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if isinstance(event, ResponseTextDeltaEvent))
    final = events[-1]
    assert deltas == expected.output_text
    assert final.type in ("response.completed", "response.incomplete") and final.response.output_text == deltas


def test_forced_function_call_and_its_output_in_the_next_turn(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model=BASE_MODEL, input="What is the weather in Paris?", tools=[WEATHER], tool_choice="required", temperature=0
    )
    [call] = [item for item in first.output if isinstance(item, ResponseFunctionToolCall)]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments), dict)
    follow_up = client.responses.create(
        model=BASE_MODEL,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"},
        ],
        tools=[WEATHER],
        max_output_tokens=30,
    )
    assert follow_up.output_text


def test_structured_output(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=BASE_MODEL,
        input=QUESTION,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
        max_output_tokens=60,
    )
    assert set(json.loads(response.output_text)) == {"city", "country"}


@pytest.mark.parametrize("arguments", [{"store": True}, {"previous_response_id": "resp_123"}])
def test_stateful_requests_are_refused_clearly(client: openai.OpenAI, arguments: dict) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=BASE_MODEL, input=QUESTION, **arguments)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == next(iter(arguments))
