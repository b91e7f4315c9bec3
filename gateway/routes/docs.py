from __future__ import annotations

from functools import cache

from litestar import Response, get

from gateway.openapi import openapi_document
from gateway.routes.body import json_response


@cache
def _document() -> dict:
    return openapi_document()


@get("/openapi.json")
async def openapi_json() -> Response:
    return json_response(_document())
