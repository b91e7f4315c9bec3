"""`/v1/embeddings` wire types, field for field as openai-python's. Requests ignore unknown fields."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

EmbeddingInput = str | Annotated[list[str | int | list[int]], Meta(min_length=1, max_length=2048)]
"""A text, a list of texts, a list of token ids, or a list of such lists (msgspec cannot tell lists apart in a
union, so the serving layer checks that a list holds one kind)."""


class EmbeddingRequest(msgspec.Struct, frozen=True, kw_only=True):
    input: EmbeddingInput
    model: str
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    """base64: each vector's little-endian float32 bytes, which the openai SDK asks for by default and decodes."""
    user: str | None = None


class Embedding(msgspec.Struct, frozen=True, kw_only=True):
    embedding: list[float] | str
    index: int
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class CreateEmbeddingResponse(msgspec.Struct, frozen=True, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"
