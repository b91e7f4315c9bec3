from __future__ import annotations

from litestar import Request, Response, get
from litestar.datastructures import State

from gateway.auth import caller
from gateway.protocol.models import ModelList
from gateway.routes.body import json_response
from gateway.serving.models import ModelCatalog


@get("/v1/models")
async def list_models(request: Request, state: State) -> Response:
    catalog: ModelCatalog = state.models
    return json_response(ModelList(data=catalog.list(caller(request))))


@get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, state: State) -> Response:
    catalog: ModelCatalog = state.models
    return json_response(catalog.get(model_id.lstrip("/"), caller(request)))
