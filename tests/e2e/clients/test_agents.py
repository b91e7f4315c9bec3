"""The OpenAI Agents SDK in its default Responses mode, tracing off, against the real stack: a plain answer,
and a function tool's round trip (the call, the tool's output sent back, the final answer)."""

from __future__ import annotations

import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e
CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"It is sunny and 24 C in {city}."


def model(platform: Platform) -> OpenAIResponsesModel:
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=f"{platform.url}/v1", api_key="unused", max_retries=0)
    return OpenAIResponsesModel(model=BASE_MODEL, openai_client=client)


def test_agent_answers(platform: Platform) -> None:
    agent = Agent(
        name="assistant",
        instructions="Answer in one short sentence.",
        model=model(platform),
        model_settings=ModelSettings(temperature=0, max_tokens=200),
    )
    result = Runner.run_sync(agent, "What is the capital of France?")
    assert "Paris" in result.final_output


def test_agent_calls_a_tool_and_answers_with_its_output(platform: Platform) -> None:
    agent = Agent(
        name="weather",
        instructions="Use the tool, then answer in one short sentence.",
        model=model(platform),
        tools=[get_weather],
        model_settings=ModelSettings(temperature=0, max_tokens=200, tool_choice="get_weather"),
    )
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=3)
    assert CALLS, "the tool was called"
    assert isinstance(result.final_output, str) and result.final_output
