from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from gateway.protocol.models import ModelList
from gateway.routes.body import json_response
from gateway.serving.models import ModelCatalog


@get("/v1/models")
async def list_models(state: State) -> Response:
    catalog: ModelCatalog = state.models
    return json_response(ModelList(data=catalog.list()))


@get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, state: State) -> Response:
    catalog: ModelCatalog = state.models
    return json_response(catalog.get(model_id.lstrip("/")))
