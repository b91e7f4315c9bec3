"""The real stack over HTTP with the openai SDK: Ray Serve, vLLM and the default model."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)

from tests.e2e.adapters import build_random_adapter, reference_greedy
from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e
FRANCE: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]


def greedy(client: openai.OpenAI, **kwargs):
    args = {"model": BASE_MODEL, "messages": FRANCE, "temperature": 0, "max_tokens": 32, **kwargs}
    return client.chat.completions.create(**args)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = client.models.list()
    base = next(m for m in models.data if m.id == BASE_MODEL)
    assert base.object == "model" and base.owned_by and base.created > 0
    assert base.model_extra is not None
    assert base.model_extra["max_model_len"] == 4096
    assert Path(base.model_extra["root"], "config.json").is_file()
    assert client.models.retrieve(BASE_MODEL).id == BASE_MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_greedy_answer_and_usage(client: openai.OpenAI) -> None:
    response = greedy(client)
    assert "Paris" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    assert usage.prompt_tokens > 10 and usage.completion_tokens > 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_gives_exactly_that_many(client: openai.OpenAI) -> None:
    response = greedy(client, max_tokens=4)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 4
    response = greedy(client, max_tokens=None, max_completion_tokens=3)
    assert response.usage.completion_tokens == 3


def test_stream_equals_non_stream(client: openai.OpenAI) -> None:
    expected = greedy(client).choices[0].message.content
    stream = greedy(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_n_choices(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=BASE_MODEL, messages=FRANCE, n=2, temperature=1.0, max_tokens=8, seed=3)
    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.message.content for c in response.choices)
    assert response.usage is not None
    assert 2 <= response.usage.completion_tokens <= 16


def test_stop_sequence(client: openai.OpenAI) -> None:
    response = greedy(client, stop=[" Paris"])
    assert response.choices[0].message.content.startswith("The capital of France is")
    assert "Paris" not in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"


def test_seed_reproducible_at_temperature_one(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write a sentence about the sea."}]
        response = client.chat.completions.create(
            model=BASE_MODEL, messages=messages, temperature=1.0, seed=seed, max_tokens=24
        )
        content = response.choices[0].message.content
        assert content is not None
        return content

    first = sample(1234)
    assert sample(1234) == first
    assert any(sample(seed) != first for seed in (1, 2, 3))


def test_logprobs(client: openai.OpenAI) -> None:
    response = greedy(client, logprobs=True, top_logprobs=3, max_tokens=5)
    content = response.choices[0].logprobs.content
    assert len(content) == 5
    assert "".join(entry.token for entry in content) == response.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        assert entry.bytes == list(entry.token.encode())


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    response = client.chat.completions.create(
        model=BASE_MODEL,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        temperature=0,
        max_tokens=80,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    content = response.choices[0].message.content
    assert content is not None
    person = json.loads(content)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


def test_forced_tool_calls_have_json_arguments(client: openai.OpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What's the weather in Paris?"}]
    choices: tuple[ChatCompletionToolChoiceOptionParam, ...] = (
        "required",
        {"type": "function", "function": {"name": "get_weather"}},
    )
    for choice in choices:
        response = client.chat.completions.create(
            model=BASE_MODEL, messages=messages, tools=tools, tool_choice=choice, temperature=0, max_tokens=60
        )
        tool_calls = response.choices[0].message.tool_calls
        assert tool_calls is not None
        call = tool_calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        assert call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments)["city"], str)


def raw_post(platform: Platform, path: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{platform.url}{path}", timeout=120, **kwargs)


def assert_envelope(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_error_cases(platform: Platform, client: openai.OpenAI) -> None:
    url = "/v1/chat/completions"
    headers = {"content-type": "application/json"}
    assert_envelope(raw_post(platform, url, content=b"{oops", headers=headers), 400, code="invalid_json")
    assert_envelope(raw_post(platform, url, json={"model": BASE_MODEL}), 400, param="messages")
    assert_envelope(raw_post(platform, url, json={"model": BASE_MODEL, "messages": []}), 400, param="messages")
    bad_temperature = {"model": BASE_MODEL, "messages": FRANCE, "temperature": -0.5}
    assert_envelope(raw_post(platform, url, json=bad_temperature), 400, param="temperature")
    too_many = {"model": BASE_MODEL, "messages": FRANCE, "max_tokens": 100_000}
    assert_envelope(raw_post(platform, url, json=too_many), 400, code="context_length_exceeded")
    long_prompt = {"model": BASE_MODEL, "messages": [{"role": "user", "content": "word " * 6000}]}
    assert_envelope(raw_post(platform, url, json=long_prompt), 400, param="messages", code="context_length_exceeded")
    unknown = {"model": "no-such-model", "messages": FRANCE}
    assert_envelope(raw_post(platform, url, json=unknown), 404, param="model", code="model_not_found")
    assert_envelope(httpx.get(f"{platform.url}/v1/no-such-route"), 404)
    assert_envelope(httpx.get(f"{platform.url}{url}"), 405)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=BASE_MODEL, messages=FRANCE, temperature=-1)
    # Still serving after all of that.
    assert "Paris" in greedy(client).choices[0].message.content


def test_disconnect_aborts_generation(platform: Platform) -> None:
    aborted_before = platform.engine_stats()["aborted"]
    body = {
        "model": BASE_MODEL,
        "messages": FRANCE,
        "max_tokens": 3000,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", f"{platform.url}/v1/chat/completions", json=body, timeout=60) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)
    deadline = time.monotonic() + 20  # 3000 tokens would take minutes on this CPU
    while time.monotonic() < deadline:
        stats = platform.engine_stats()
        if stats["aborted"] > aborted_before and stats["running"] == 0:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the generation was not aborted after the client left: {platform.engine_stats()}")


def test_seed_chat_route(platform: Platform) -> None:
    response = raw_post(platform, "/chat", json={"prompt": "What is the capital of France?", "temperature": 0})
    assert response.status_code == 200
    assert "Paris" in response.json()["text"]
    assert response.headers["x-request-id"]
    refused = raw_post(platform, "/chat", json={"prompt": "hi", "adapter_path": "/etc/passwd"})
    assert_envelope(refused, 400, param="adapter_path")


def test_adapter_loaded_at_run_time_changes_answers(platform: Platform, client: openai.OpenAI, data_dir: Path) -> None:
    adapters = data_dir / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    build_random_adapter(adapters / "random-lora", BASE_MODEL)
    listed = {m.id: m for m in client.models.list().data}
    assert listed["random-lora"].model_extra is not None
    assert listed["random-lora"].model_extra["parent"] == BASE_MODEL
    base_text = greedy(client).choices[0].message.content
    adapted = greedy(client, model="random-lora")
    assert adapted.model == "random-lora"
    assert adapted.choices[0].message.content != base_text
    streamed = "".join(
        chunk.choices[0].delta.content or "" for chunk in greedy(client, model="random-lora", stream=True) if chunk.choices
    )
    assert streamed == adapted.choices[0].message.content
    # The base model is unaffected by the adapter living beside it.
    assert greedy(client).choices[0].message.content == base_text


def test_adapters_batched_together_match_transformers_and_peft(client: openai.OpenAI, data_dir: Path) -> None:
    """Requests for two adapters of different ranks and for the base model, in flight together so the
    engine batches them, each give the logprobs that transformers + PEFT compute for that model alone."""
    adapters = data_dir / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    paths = {
        "mixed-rank8": build_random_adapter(adapters / "mixed-rank8", BASE_MODEL, rank=8, seed=11, scale=2.0),
        "mixed-rank16": build_random_adapter(adapters / "mixed-rank16", BASE_MODEL, rank=16, seed=12, scale=2.0),
    }
    models = [BASE_MODEL, *paths] * 3
    tokens = 6

    def ask(model: str):
        return greedy(client, model=model, max_tokens=tokens, logprobs=True).choices[0].logprobs.content

    with ThreadPoolExecutor(len(models)) as pool:
        answers = list(pool.map(ask, models))
    references = {
        model: reference_greedy(paths.get(model), [dict(message) for message in FRANCE], tokens) for model in set(models)
    }
    for model, answer in zip(models, answers, strict=True):
        expected = references[model]
        # A token that is part of a UTF-8 character reads '' here and U+FFFD from transformers.
        assert [item.token for item in answer] == [token.replace("\ufffd", "") for token, _ in expected], model
        for item, (_, logprob) in zip(answer, expected, strict=True):
            assert item.logprob == pytest.approx(logprob, abs=0.02), model


def test_cpu_binding_keeps_the_control_plane_off_the_compute_cores(platform: Platform) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one core: nothing to separate")
    engine = platform.engine_stats()
    assert engine["compute_cores"] == ",".join(map(str, cores[:-1]))
    raylets = platform.processes("raylet")
    assert raylets, "no raylet found for this run"
    assert all(proc.cpu_affinity() == cores[-1:] for proc in raylets)
