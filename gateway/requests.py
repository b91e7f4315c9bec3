"""The request class of every route: typed JSON bodies decoded strictly, in one place.

Litestar documents and validates a handler's `data: SomeStruct`, but converts the body laxly ("0.5" would
pass as a number, "true" as a boolean), where OpenAI's API refuses a value of the wrong type. So `json()`
decodes the body straight into the handler's declared type with msgspec, enforcing MAX_REQUEST_BYTES and
naming the parameter at fault; Litestar then receives the finished struct and passes it through."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from engines.core.errors import PayloadTooLargeError
from gateway.errors import decode_error


class PlatformRequest(Request):
    async def json(self) -> Any:
        body = await self.body()
        limit = self.app.state.settings.max_request_bytes
        if len(body) > limit:
            raise PayloadTooLargeError(f"The request body is {len(body)} bytes; the limit is {limit} (MAX_REQUEST_BYTES).")
        data_field = self.route_handler.parsed_data_field
        kind = data_field.annotation if data_field is not None else Any
        try:
            return msgspec.json.decode(body, type=kind)
        except msgspec.DecodeError as exc:
            raise decode_error(exc) from None
