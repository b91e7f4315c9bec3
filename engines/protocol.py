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
    prompt_logprobs: int | None = None
    """Also the prompt's tokens, each with its logprob and the k most likely alternatives (the completions
    API's `echo`); they come on the first chunk."""
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None
    json_object: bool = False


class GenerateRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    messages: list[dict[str, Any]] = []
    """Chat messages in the shape the model's chat template expects (content as a string)."""
    prompt: str | list[int] | None = None
    """A raw prompt, text or token ids, used as is instead of `messages` (the completions API)."""
    echo: bool = False
    """Send the prompt back (PromptEcho) on the first chunk; with max_tokens 0, only the prompt."""
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


class PromptEcho(msgspec.Struct, frozen=True, array_like=True):
    """The prompt as the completions API echoes it: its text, and per token its logprob (None for the first,
    which has no context) where `prompt_logprobs` was asked for."""

    text: str
    tokens: list[str] = []
    logprobs: list[TokenLogprob | None] | None = None


class GenerateChunk(msgspec.Struct, frozen=True, array_like=True):
    prompt_tokens: int
    choices: list[ChoiceDelta]
    prompt: PromptEcho | None = None
    """On the first chunk, for `echo` requests."""


class TokenizeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """vLLM's /tokenize: a text, or chat messages rendered with the model's template."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False


class TokenizeResult(msgspec.Struct, frozen=True, kw_only=True):
    tokens: list[int]
    token_strs: list[str] | None = None
    max_model_len: int
