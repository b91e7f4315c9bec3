from __future__ import annotations

from litestar import Request, post

from gateway.observability import request_log
from gateway.protocol.embeddings import CreateEmbeddingResponse, EmbeddingRequest
from gateway.protocol.errors import error_responses
from gateway.routes.services import Embeddings


@post("/v1/embeddings", status_code=200, summary="Create embeddings", responses=error_responses(404, 413, 503))
async def create_embedding(
    data: EmbeddingRequest, request: Request, embeddings: Embeddings, owner: str
) -> CreateEmbeddingResponse:
    return await embeddings.create(data, request_log(request), owner=owner)
