"""Request bodies decoded with msgspec, so a bad body is a 400 that names the parameter at fault."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Request, Response

from engines.core.errors import PayloadTooLargeError
from gateway.errors import decode_error

T = TypeVar("T")


async def decode_body(request: Request, kind: type[T]) -> T:
    body = await request.body()
    limit = request.app.state.settings.max_request_bytes
    if len(body) > limit:
        raise PayloadTooLargeError(f"The request body is {len(body)} bytes; the limit is {limit} (MAX_REQUEST_BYTES).")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise decode_error(exc) from None


def json_response(value: object, status_code: int = 200) -> Response:
    return Response(content=msgspec.json.encode(value), status_code=status_code, media_type="application/json")
