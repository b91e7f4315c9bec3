"""vLLM's tokenizer routes (`/tokenize`, `/detokenize`, `/tokenizer_info`, at the server root), which
lm-evaluation-harness and other clients use to run without a local copy of the tokenizer."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.protocol.chat import Message, Tool

TokenId = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class TokenizeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A `prompt`, or chat `messages` rendered with the model's template (exactly one of the two)."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[Message], Meta(min_length=1)] | None = None
    tools: list[Tool] | None = None
    add_special_tokens: bool | None = None
    """Default: true for a prompt; for messages the template places the special tokens."""
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False


class TokenizeResponse(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(msgspec.Struct, frozen=True, kw_only=True):
    model: str | None = None
    tokens: list[TokenId]


class DetokenizeResponse(msgspec.Struct, frozen=True):
    prompt: str
