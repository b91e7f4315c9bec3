"""The model catalog: the base model and every adapter model, each a model name clients can use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from engines.adapters import SHARED_OWNER, Adapter, AdapterRegistry
from engines.core.errors import InvalidRequestError, PermissionDeniedError, model_not_found
from gateway.protocol.models import Model, ModelDeleted
from jobs.export import Exporter
from jobs.models import FineTunedModels


class BaseModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    root: str
    created: int
    max_model_len: int
    owned_by: str = SHARED_OWNER


class ModelCatalog:
    """Models as one caller sees them: the shared ones and the caller's own fine-tuned models."""

    def __init__(
        self,
        base: BaseModelInfo,
        adapters: AdapterRegistry,
        embedding: BaseModelInfo | None = None,
        *,
        fine_tuned: FineTunedModels | None = None,
        exporter: Exporter | None = None,
    ) -> None:
        """`fine_tuned`: where the callers' fine-tuned models can be deleted and downloaded; `exporter` merges them
        into the base; None where nothing can be."""
        self.base = base
        self.adapters = adapters
        self.embedding = embedding
        self.fine_tuned = fine_tuned
        self.exporter = exporter

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

    async def delete(self, model_id: str, owner: str) -> ModelDeleted:
        """Deletes one of the caller's fine-tuned models or checkpoints; the shared models are a 403, unknown (or
        others') names a 404."""
        shared = model_id in (self.base.id, self.embedding.id if self.embedding else None)
        if shared or (await self.resolve_adapter(model_id, owner)).owner != owner:
            raise PermissionDeniedError(
                f"The model '{model_id}' is shared by every caller; only fine-tuned models can be deleted, by their owner.",
                param="model",
                code="model_not_deletable",
            )
        removed = None
        if self.fine_tuned is not None:
            removed = await asyncio.to_thread(self.fine_tuned.delete, model_id, owner=owner)
        if removed is None:  # a model placed by an admin, or gone meanwhile
            raise model_not_found(model_id)
        self.adapters.invalidate()
        return ModelDeleted(id=model_id, deleted=True)

    async def adapter_archive(self, model_id: str, owner: str) -> bytes:
        """The files of one of the caller's fine-tuned models or checkpoints, as a tar."""
        adapter, fine_tuned = await self._downloadable(model_id, owner)
        return await asyncio.to_thread(fine_tuned.adapter_archive, adapter)

    async def merged_archive(self, model_id: str, owner: str, target: Path) -> None:
        """Writes to `target` the tar of one of the caller's fine-tuned models merged into the base, merging it
        first where that was not done before."""
        adapter, fine_tuned = await self._downloadable(model_id, owner)
        if self.exporter is None or adapter.digest is None:
            raise PermissionDeniedError("This platform does not merge models.", param="model", code="model_not_mergeable")
        key = await self.exporter.merged(adapter.digest)
        await asyncio.to_thread(fine_tuned.artifacts.get_file, key, target)

    async def _downloadable(self, model_id: str, owner: str) -> tuple[Adapter, FineTunedModels]:
        adapter = await self.resolve_adapter(model_id, owner)
        if adapter.owner != owner or adapter.digest is None or self.fine_tuned is None:
            raise PermissionDeniedError(
                f"The model '{model_id}' is shared by every caller; only fine-tuned models can be downloaded, by their "
                "owner.",
                param="model",
                code="model_not_downloadable",
            )
        return adapter, self.fine_tuned

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
