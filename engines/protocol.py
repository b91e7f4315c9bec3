"""What the gateway sends an engine and what the engine streams back: plain structs that pickle cheaply
across Ray, free of HTTP and OpenAI wire details."""

from __future__ import annotations

from typing import Any

import msgspec

from engines.adapters import Adapter


class SamplingOptions(msgspec.Struct, frozen=True, kw_only=True):
    max_tokens: int | None = None
    """None: as many as the context leaves after the prompt."""
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = []
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None
    """None: no logprobs; k >= 0: the sampled token's logprob and the k most likely alternatives."""
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None
    json_object: bool = False


class GenerateRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    messages: list[dict[str, Any]]
    """Chat messages in the shape the model's chat template expects (content as a string)."""
    sampling: SamplingOptions
    tools: list[dict[str, Any]] | None = None
    adapter: Adapter | None = None


class TopLogprob(msgspec.Struct, frozen=True, array_like=True):
    token: str
    logprob: float


class TokenLogprob(msgspec.Struct, frozen=True, array_like=True):
    token: str
    logprob: float
    top: list[TopLogprob]


class ChoiceDelta(msgspec.Struct, frozen=True, array_like=True):
    """What one engine step added to one choice."""

    index: int
    text: str
    tokens: int
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None
    """`stop`, `length` or `abort` on the choice's last delta."""


class GenerateChunk(msgspec.Struct, frozen=True, array_like=True):
    prompt_tokens: int
    choices: list[ChoiceDelta]
