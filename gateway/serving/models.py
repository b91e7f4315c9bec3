"""The model catalog: the base model and every adapter model, each a model name clients can use."""

from __future__ import annotations

import msgspec

from engines.adapters import SHARED_OWNER, Adapter, AdapterRegistry
from engines.core.errors import InvalidRequestError, model_not_found
from gateway.protocol.models import Model


class BaseModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    root: str
    created: int
    max_model_len: int
    owned_by: str = SHARED_OWNER


class ModelCatalog:
    """Models as one caller sees them: the shared ones and the caller's own fine-tuned models."""

    def __init__(self, base: BaseModelInfo, adapters: AdapterRegistry, embedding: BaseModelInfo | None = None) -> None:
        self.base = base
        self.adapters = adapters
        self.embedding = embedding

    async def list(self, owner: str) -> list[Model]:
        visible = (adapter for adapter in await self.adapters.all() if adapter.visible_to(owner))
        shared = [self.base] if self.embedding is None else [self.base, self.embedding]
        return [*(self._card(model) for model in shared), *(self._adapter_card(adapter) for adapter in visible)]

    async def get(self, model_id: str, owner: str) -> Model:
        if model_id == self.base.id:
            return self._card(self.base)
        if self.embedding is not None and model_id == self.embedding.id:
            return self._card(self.embedding)
        return self._adapter_card(await self.resolve_adapter(model_id, owner))

    async def resolve(self, model_id: str, owner: str) -> Adapter | None:
        """None for the base model, the adapter for an adapter model; unknown (or others') names are 404."""
        if model_id == self.base.id:
            return None
        if self.embedding is not None and model_id == self.embedding.id:
            raise InvalidRequestError(
                f"The model '{model_id}' is an embedding model: use it with /v1/embeddings.",
                param="model",
                code="model_not_supported",
            )
        return await self.resolve_adapter(model_id, owner)

    async def resolve_embedding(self, model_id: str, owner: str) -> BaseModelInfo:
        """The embedding model; the generative models are a 400, unknown (or others') names a 404."""
        if self.embedding is not None and model_id == self.embedding.id:
            return self.embedding
        await self.resolve(model_id, owner)
        raise InvalidRequestError(
            f"The model '{model_id}' does not make embeddings"
            + (f"; the embedding model is '{self.embedding.id}'." if self.embedding else ": this platform serves none."),
            param="model",
            code="model_not_supported",
        )

    async def resolve_adapter(self, model_id: str, owner: str) -> Adapter:
        adapter = await self.adapters.get(model_id)
        if adapter is None or not adapter.visible_to(owner):
            raise model_not_found(model_id)
        return adapter

    @staticmethod
    def _card(model: BaseModelInfo) -> Model:
        return Model(
            id=model.id, created=model.created, owned_by=model.owned_by, root=model.root, max_model_len=model.max_model_len
        )

    def _adapter_card(self, adapter: Adapter) -> Model:
        return Model(
            id=adapter.name,
            created=adapter.created,
            owned_by=adapter.owner,
            root=adapter.path,
            parent=adapter.parent,
            max_model_len=self.base.max_model_len,
        )
