"""The model catalog: the base model and every adapter model, each a model name clients can use."""

from __future__ import annotations

import msgspec

from engines.adapters import SHARED_OWNER, Adapter, AdapterRegistry
from engines.core.errors import model_not_found
from gateway.protocol.models import Model


class BaseModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    root: str
    created: int
    max_model_len: int
    owned_by: str = SHARED_OWNER


class ModelCatalog:
    """Models as one caller sees them: the shared ones and the caller's own fine-tuned models."""

    def __init__(self, base: BaseModelInfo, adapters: AdapterRegistry) -> None:
        self.base = base
        self.adapters = adapters

    async def list(self, owner: str) -> list[Model]:
        visible = (adapter for adapter in await self.adapters.all() if adapter.visible_to(owner))
        return [self._base_card(), *(self._adapter_card(adapter) for adapter in visible)]

    async def get(self, model_id: str, owner: str) -> Model:
        if model_id == self.base.id:
            return self._base_card()
        return self._adapter_card(await self.resolve_adapter(model_id, owner))

    async def resolve(self, model_id: str, owner: str) -> Adapter | None:
        """None for the base model, the adapter for an adapter model; unknown (or others') names are 404."""
        if model_id == self.base.id:
            return None
        return await self.resolve_adapter(model_id, owner)

    async def resolve_adapter(self, model_id: str, owner: str) -> Adapter:
        adapter = await self.adapters.get(model_id)
        if adapter is None or not adapter.visible_to(owner):
            raise model_not_found(model_id)
        return adapter

    def _base_card(self) -> Model:
        base = self.base
        return Model(
            id=base.id, created=base.created, owned_by=base.owned_by, root=base.root, max_model_len=base.max_model_len
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
