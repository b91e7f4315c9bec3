"""Embeddings: the request checked and turned into texts or token ids, the vectors encoded as asked."""

from __future__ import annotations

import base64
import struct
from typing import Protocol

from engines.core.errors import InvalidRequestError
from engines.embeddings import EmbedRequest, EmbedResult
from gateway.limits import Limiter
from gateway.observability import RequestLog
from gateway.protocol.embeddings import CreateEmbeddingResponse, Embedding, EmbeddingRequest, EmbeddingUsage
from gateway.serving.models import ModelCatalog
from gateway.serving.streaming import TokenBudget


class EmbeddingClient(Protocol):
    async def embed(self, request: EmbedRequest) -> EmbedResult:
        """The vectors in input order; raises PlatformError subclasses for inputs the model cannot take."""
        ...


def embed_request(body: EmbeddingRequest) -> EmbedRequest:
    inputs = body.input
    if isinstance(inputs, str):
        return EmbedRequest(texts=[_text(inputs, "input")], dimensions=body.dimensions)
    if all(isinstance(item, str) for item in inputs):
        return EmbedRequest(
            texts=[_text(item, f"input[{i}]") for i, item in enumerate(inputs) if isinstance(item, str)],
            dimensions=body.dimensions,
        )
    if all(isinstance(item, int) for item in inputs):
        return EmbedRequest(token_ids=[_token_ids(inputs, "input")], dimensions=body.dimensions)
    if all(isinstance(item, list) for item in inputs):
        return EmbedRequest(
            token_ids=[_token_ids(item, f"input[{i}]") for i, item in enumerate(inputs) if isinstance(item, list)],
            dimensions=body.dimensions,
        )
    raise InvalidRequestError(
        "Invalid 'input': expected a string, a list of strings, a list of token ids or a list of lists of token ids.",
        param="input",
    )


def _text(text: str, param: str) -> str:
    if not text:
        raise InvalidRequestError(f"Invalid '{param}': an input must not be empty.", param="input")
    return text


def _token_ids(ids: list, param: str) -> list[int]:
    if not ids or any(isinstance(token, bool) or not isinstance(token, int) or token < 0 for token in ids):
        raise InvalidRequestError(f"Invalid '{param}': token ids must be a non-empty list of integers >= 0.", param="input")
    return ids


def encode_vector(vector: list[float], encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


class EmbeddingService:
    def __init__(self, embedder: EmbeddingClient | None, models: ModelCatalog, *, limiter: Limiter | None = None) -> None:
        self.embedder = embedder
        self.models = models
        self.limiter = limiter

    async def create(self, body: EmbeddingRequest, log: RequestLog, *, owner: str) -> CreateEmbeddingResponse:
        log.model = body.model
        model = await self.models.resolve_embedding(body.model, owner)
        log.served(model.id)
        request = embed_request(body)
        assert self.embedder is not None  # the catalog has an embedding model only where an embedder serves it
        budget = TokenBudget(self.limiter, owner)
        await budget.admit(0)
        result = await self.embedder.embed(request)
        await budget.charge(result.prompt_tokens)
        log.prompt_tokens = result.prompt_tokens
        return CreateEmbeddingResponse(
            data=[
                Embedding(embedding=encode_vector(vector, body.encoding_format), index=index)
                for index, vector in enumerate(result.vectors)
            ],
            model=model.id,
            usage=EmbeddingUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
        )
