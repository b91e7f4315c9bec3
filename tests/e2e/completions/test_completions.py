"""/v1/completions on the real stack with the openai SDK: prompt shapes, choices, streaming, echo with the
legacy logprobs (checked against transformers + PEFT), OpenAI's errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.adapters import build_random_adapter, reference_prompt_logprobs
from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e
PROMPT = "The capital of France is"


def greedy(client: openai.OpenAI, **kwargs):
    return client.completions.create(**{"model": BASE_MODEL, "prompt": PROMPT, "temperature": 0, **kwargs})


def tokenize(platform: Platform, text: str) -> list[int]:
    response = httpx.post(f"{platform.url}/tokenize", json={"model": BASE_MODEL, "prompt": text}, timeout=60)
    response.raise_for_status()
    return response.json()["tokens"]


def test_greedy_completion_with_openais_defaults(client: openai.OpenAI) -> None:
    completion = greedy(client, extra_body={"ignore_eos": True})
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "length" and choice.text
    assert completion.usage.completion_tokens == 16, "max_tokens defaults to 16, as OpenAI's"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 16


def test_every_prompt_shape_gives_the_same_answer(platform: Platform, client: openai.OpenAI) -> None:
    ids = tokenize(platform, PROMPT)
    text = greedy(client, max_tokens=8).choices[0].text
    assert greedy(client, prompt=ids, max_tokens=8).choices[0].text == text
    for prompt in ([PROMPT, PROMPT], [ids, ids]):
        completion = greedy(client, prompt=prompt, max_tokens=8, n=2)
        assert [choice.index for choice in completion.choices] == [0, 1, 2, 3]
        assert [choice.text for choice in completion.choices] == [text] * 4
        assert completion.usage.prompt_tokens == 2 * len(ids)


def test_stream_equals_non_stream(client: openai.OpenAI) -> None:
    expected = greedy(client, max_tokens=12)
    chunks = list(greedy(client, max_tokens=12, stream=True, stream_options={"include_usage": True}))
    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices) == expected.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage == expected.usage
    assert [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason] == ["length"]


def test_stop_and_seed(client: openai.OpenAI) -> None:
    text = greedy(client, max_tokens=16).choices[0].text
    stop = text.strip().split(" ")[1]
    stopped = greedy(client, max_tokens=16, stop=[stop]).choices[0]
    assert stopped.finish_reason == "stop" and stop not in stopped.text

    def sample(seed: int) -> str:
        return client.completions.create(model=BASE_MODEL, prompt=PROMPT, max_tokens=12, seed=seed).choices[0].text

    assert sample(7) == sample(7)


def test_logprobs_in_the_legacy_shape(client: openai.OpenAI) -> None:
    choice = greedy(client, max_tokens=5, logprobs=3).choices[0]
    logprobs = choice.logprobs
    assert "".join(logprobs.tokens) == choice.text
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset) == 5
    offsets = [sum(len(token) for token in logprobs.tokens[:i]) for i in range(5)]
    assert logprobs.text_offset == offsets
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert logprob <= 0 and top[token] == logprob, "greedy: the sampled token is the most likely one"
        assert 3 <= len(top) <= 4


def test_echoed_prompt_logprobs_match_transformers_and_peft(
    platform: Platform, client: openai.OpenAI, data_dir: Path
) -> None:
    """What lm-evaluation-harness's loglikelihood asks for: the prompt echoed with its tokens' logprobs, no
    completion; on the base model and on an adapter."""
    adapters = data_dir / "adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    adapter = build_random_adapter(adapters / "echo-rank8", BASE_MODEL, rank=8, seed=21, scale=2.0)
    text = "Paris is the capital and largest city of France."
    ids = tokenize(platform, text)
    for model, path in ((BASE_MODEL, None), ("echo-rank8", adapter)):
        choice = client.completions.create(model=model, prompt=text, echo=True, logprobs=1, max_tokens=0).choices[0]
        assert choice.text == text
        logprobs = choice.logprobs
        assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.top_logprobs
        assert len(logprobs.tokens) == len(ids) and "".join(logprobs.tokens) == text
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        expected = reference_prompt_logprobs(path, ids)
        assert logprobs.token_logprobs[1:] == pytest.approx(expected, abs=0.02), model


def test_echo_with_a_completion_and_streaming(client: openai.OpenAI) -> None:
    expected = greedy(client, max_tokens=6, echo=True)
    assert expected.choices[0].text.startswith(PROMPT)
    chunks = list(greedy(client, max_tokens=6, echo=True, stream=True))
    assert "".join(choice.text for chunk in chunks for choice in chunk.choices) == expected.choices[0].text


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"suffix": "and so on."}, "suffix"),
        ({"best_of": 2}, "best_of"),
        ({"prompt": [10**7]}, "prompt"),
        ({"prompt": "word " * 6000}, "prompt"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_requests_get_openais_errors(client: openai.OpenAI, arguments: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        greedy(client, **arguments)
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == param


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        greedy(client, model="no-such-model")
