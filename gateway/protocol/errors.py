"""OpenAI's error envelope: `{"error": {"message", "type", "param", "code"}}`, and its place in each
operation's documented responses."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec


class ErrorBody(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody


_MEANINGS = {
    400: "Invalid request: the error names the parameter at fault",
    401: "No API key, or an unknown one (when API keys are configured)",
    403: "The caller may use the object but not change it",
    404: "No such object for this caller",
    413: "The request body or upload is over its size limit",
    429: "Over the key's rate limit (when limits are configured); see Retry-After",
    503: "No engine replica can serve now; see Retry-After",
}


def error_responses(*statuses: int, authenticated: bool = True) -> dict[int, ResponseSpec]:
    """The documented error responses of an operation. Every route behind the keys can also answer 400 (a bad
    parameter), 401 and 429."""
    codes = {*statuses, *((400, 401, 429) if authenticated else ())}
    return {
        status: ResponseSpec(ErrorEnvelope, description=_MEANINGS[status], generate_examples=False)
        for status in sorted(codes)
    }
