from __future__ import annotations

from litestar import Response, delete, get

from gateway.protocol.errors import error_responses
from gateway.protocol.models import Model, ModelDeleted, ModelList
from gateway.routes.services import Models


@get("/v1/models", summary="List models", responses=error_responses())
async def list_models(models: Models, owner: str) -> ModelList:
    return ModelList(data=await models.list(owner))


@get("/v1/models/{model_id:path}", summary="Retrieve a model", responses=error_responses(404))
async def retrieve_model(model_id: str, models: Models, owner: str) -> Model:
    return await models.get(model_id.lstrip("/"), owner)


@delete(
    "/v1/models/{model_id:path}",
    summary="Delete a fine-tuned model",
    status_code=200,
    responses=error_responses(403, 404),
)
async def delete_model(model_id: str, models: Models, owner: str) -> ModelDeleted:
    return await models.delete(model_id.lstrip("/"), owner)


@get(
    "/v1/fine_tuning/adapters/{model_id:path}",
    summary="Download a fine-tuned model's adapter (an extension)",
    description="A tar of the LoRA adapter's files, adapter_config.json and adapter_model.safetensors, at its root:"
    " unpacked, PEFT's `PeftModel.from_pretrained` and vLLM's `--lora-modules` load it as it is.",
    responses=error_responses(403, 404),
    media_type="application/x-tar",
)
async def download_adapter(model_id: str, models: Models, owner: str) -> Response[bytes]:
    model_id = model_id.lstrip("/")
    archive = await models.adapter_archive(model_id, owner)
    filename = model_id.replace(":", "_").replace("/", "_") + ".tar"
    return Response(
        archive, media_type="application/x-tar", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
