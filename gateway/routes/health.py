from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from engines.core.errors import PlatformError, ServiceUnavailableError
from gateway.engine_client import EngineClient
from gateway.routes.body import json_response


@get("/health")
async def health(state: State) -> Response:
    """200 once an engine replica can serve, 503 before that or when none can."""
    engine: EngineClient = state.engine
    try:
        stats = await engine.stats()
    except PlatformError as exc:
        raise ServiceUnavailableError(f"No engine replica can serve: {exc.message}", retry_after=5) from None
    return json_response({"status": "ok", "engine": stats})
