"""vLLM's tokenizer routes on the real stack: what lm-evaluation-harness uses without a local tokenizer."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e


def post(platform: Platform, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{platform.url}{path}", json=body, timeout=60)


def test_tokenize_and_detokenize_round_trip(platform: Platform) -> None:
    text = "Tokenizers split words into pieces."
    body = post(platform, "/tokenize", {"model": BASE_MODEL, "prompt": text, "return_token_strs": True}).json()
    assert body["count"] == len(body["tokens"]) == len(body["token_strs"]) > 3
    assert body["max_model_len"] > 0
    assert post(platform, "/detokenize", {"model": BASE_MODEL, "tokens": body["tokens"]}).json() == {"prompt": text}


def test_tokenized_messages_are_the_chat_prompt(platform: Platform, client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]
    count = post(platform, "/tokenize", {"model": BASE_MODEL, "messages": messages}).json()["count"]
    chat = client.chat.completions.create(model=BASE_MODEL, messages=messages, max_tokens=1)
    assert chat.usage is not None and count == chat.usage.prompt_tokens


def test_tokenizer_info(platform: Platform) -> None:
    info = httpx.get(f"{platform.url}/tokenizer_info", timeout=60).json()
    assert info["tokenizer_class"] and info["eos_token"] and "chat_template" in info


def test_errors(platform: Platform) -> None:
    assert post(platform, "/tokenize", {"model": "no-such-model", "prompt": "a"}).status_code == 404
    response = post(platform, "/detokenize", {"tokens": [10**7]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "tokens"
