"""`/v1/models` objects, as openai-python's `Model`, plus vLLM's `root`, `parent` and `max_model_len`."""

from __future__ import annotations

from typing import Literal

import msgspec


class Model(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(msgspec.Struct, frozen=True):
    data: list[Model]
    object: Literal["list"] = "list"


class ModelDeleted(msgspec.Struct, frozen=True):
    """openai-python's `ModelDeleted`."""

    id: str
    deleted: bool
    object: Literal["model"] = "model"
