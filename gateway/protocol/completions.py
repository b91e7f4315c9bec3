"""`/v1/completions` (the legacy text completions API) wire types, field for field as openai-python's.
Requests ignore unknown fields."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from gateway.protocol.chat import Penalty, StreamOptions, Usage

Prompt = str | Annotated[list[str | int | list[int]], Meta(min_length=1)]
"""A text, a list of texts, a list of token ids, or a list of such lists (msgspec cannot tell lists apart in a
union, so the serving layer checks that a list holds one kind)."""


class CompletionRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    prompt: Prompt | None = None
    """None is the empty text (OpenAI starts such a completion from the beginning of a document)."""
    best_of: Annotated[int, Meta(ge=0, le=20)] | None = None
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[float, Meta(ge=-100.0, le=100.0)]] | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = 16
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    presence_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] | None = None
    user: str | None = None
    # vLLM's extension, used by benchmarks to generate a fixed number of tokens.
    ignore_eos: bool = False


class CompletionLogprobs(msgspec.Struct, frozen=True, kw_only=True):
    """The legacy shape: parallel lists, one entry per token; `text_offset` counts characters of the choice's
    text (the echoed prompt included)."""

    text_offset: list[int]
    token_logprobs: list[float | None]
    tokens: list[str]
    top_logprobs: list[dict[str, float] | None]


CompletionFinishReason = Literal["stop", "length", "content_filter"]


class CompletionChoice(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: CompletionFinishReason | None


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """The response, and with `stream: true` each event's chunk (same object, text deltas in the choices)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    system_fingerprint: str | None = None
    usage: Usage | UnsetType | None = field(default=UNSET)
