from __future__ import annotations

from litestar import get

from gateway.protocol.errors import error_responses
from gateway.protocol.models import Model, ModelList
from gateway.routes.services import Models


@get("/v1/models", summary="List models", responses=error_responses())
async def list_models(models: Models, owner: str) -> ModelList:
    return ModelList(data=await models.list(owner))


@get("/v1/models/{model_id:path}", summary="Retrieve a model", responses=error_responses(404))
async def retrieve_model(model_id: str, models: Models, owner: str) -> Model:
    return await models.get(model_id.lstrip("/"), owner)
