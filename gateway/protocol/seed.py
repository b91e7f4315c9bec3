"""The seed's routes (`POST /chat`, `POST /fine-tune`): their wire types, kept for compatibility."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class SeedChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    prompt: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 256
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.7
    adapter: str | None = None
    """An adapter model name; never a filesystem path."""
    adapter_path: Any = None
    """Refused: the seed took a path here; name an adapter model with `adapter` instead."""


class SeedChatResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model: str
    text: str
    finish_reason: str
    usage: dict[str, int]


class SeedFineTuneRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The seed's `POST /fine-tune`: paths confined to the platform's data roots."""

    dataset_path: str
    output_path: str | None = None
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = None
