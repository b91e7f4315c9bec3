"""The model catalog: the base model and every adapter model, each a model name clients can use."""

from __future__ import annotations

import msgspec

from engines.adapters import AdapterInfo, AdapterRegistry
from engines.core.errors import model_not_found
from engines.protocol import AdapterRef
from gateway.protocol.models import Model

SHARED_OWNER = "system"
"""The owner of the base model and admin-placed adapters, which every caller may use."""


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

    def list(self, owner: str) -> list[Model]:
        visible = (info for info in self.adapters.all() if _visible(info, owner))
        return [self._base_card(), *(self._adapter_card(info) for info in visible)]

    def get(self, model_id: str, owner: str) -> Model:
        if model_id == self.base.id:
            return self._base_card()
        return self._adapter_card(self._adapter(model_id, owner))

    def resolve(self, model_id: str, owner: str) -> AdapterRef | None:
        """None for the base model, the adapter for an adapter model; unknown (or others') names are 404."""
        if model_id == self.base.id:
            return None
        info = self._adapter(model_id, owner)
        return AdapterRef(name=info.name, path=info.path)

    def _adapter(self, model_id: str, owner: str) -> AdapterInfo:
        info = self.adapters.get(model_id)
        if info is None or not _visible(info, owner):
            raise model_not_found(model_id)
        return info

    def _base_card(self) -> Model:
        base = self.base
        return Model(
            id=base.id, created=base.created, owned_by=base.owned_by, root=base.root, max_model_len=base.max_model_len
        )

    def _adapter_card(self, info: AdapterInfo) -> Model:
        return Model(
            id=info.name,
            created=info.created,
            owned_by=info.owned_by,
            root=info.path,
            parent=info.parent,
            max_model_len=self.base.max_model_len,
        )


def _visible(info: AdapterInfo, owner: str) -> bool:
    return info.owned_by in (SHARED_OWNER, owner)
