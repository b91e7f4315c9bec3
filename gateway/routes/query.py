"""Query-string parameters checked like body fields: a bad value is a 400 naming the parameter."""

from __future__ import annotations

from litestar import Request

from engines.core.errors import InvalidRequestError


def int_param(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequestError(
            f"Invalid '{name}': expected an integer between {low} and {high}.", param=name, code="invalid_value"
        )
    return value


def choice_param(request: Request, name: str, *, default: str, choices: tuple[str, ...]) -> str:
    value = request.query_params.get(name, default)
    if value not in choices:
        raise InvalidRequestError(
            f"Invalid '{name}': expected one of {', '.join(choices)}.", param=name, code="invalid_value"
        )
    return value


def metadata_filter(request: Request) -> dict[str, str]:
    """`metadata[key]=value` pairs."""
    return {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
