from __future__ import annotations

from typing import Any

from litestar import get

from engines.core.errors import PlatformError, ServiceUnavailableError
from gateway.protocol.errors import error_responses
from gateway.routes.services import Engine


@get("/health", summary="Health", responses=error_responses(503, authenticated=False))
async def health(engine: Engine) -> dict[str, Any]:
    """200 once an engine replica can serve, 503 before that or when none can."""
    try:
        stats = await engine.stats()
    except PlatformError as exc:
        raise ServiceUnavailableError(f"No engine replica can serve: {exc.message}", retry_after=5) from None
    return {"status": "ok", "engine": stats}
