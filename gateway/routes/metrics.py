from __future__ import annotations

from litestar import Response, get

from gateway.protocol.errors import error_responses
from gateway.routes.services import Metrics
from gateway.serving.metrics import CONTENT_TYPE


@get("/metrics", summary="Prometheus metrics of the whole platform", responses=error_responses())
async def metrics(metrics: Metrics) -> Response[str]:
    return Response(await metrics.text(), media_type=CONTENT_TYPE)
