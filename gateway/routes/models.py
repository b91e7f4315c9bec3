from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from litestar import Response, delete, get
from litestar.response import Stream

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
    headers = {"Content-Disposition": f'attachment; filename="{_tar_name(model_id)}"'}
    return Response(archive, media_type="application/x-tar", headers=headers)


@get(
    "/v1/fine_tuning/merged/{model_id:path}",
    summary="Download a fine-tuned model merged into its base (an extension)",
    description="A tar of the base model with the adapter merged into its weights (safetensors), with the base's"
    " config and tokenizer: unpacked, `vllm serve` and transformers' `from_pretrained` load it as it is. The first"
    " request for a model merges it (seconds to minutes, by the model's size); later ones are served as stored.",
    responses=error_responses(403, 404),
    media_type="application/x-tar",
)
async def download_merged(model_id: str, models: Models, owner: str) -> Stream:
    model_id = model_id.lstrip("/")
    work = Path(tempfile.mkdtemp(prefix="merged-"))
    try:
        await models.merged_archive(model_id, owner, work / "merged.tar")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    headers = {"Content-Disposition": f'attachment; filename="{_tar_name(model_id, "-merged")}"'}
    return Stream(_chunks_then_remove(work), media_type="application/x-tar", headers=headers)


async def _chunks_then_remove(work: Path) -> AsyncIterator[bytes]:
    """The tar's bytes, a MiB at a time; the folder goes once they are sent (or the client left)."""
    try:
        with (work / "merged.tar").open("rb") as archive:
            while chunk := await asyncio.to_thread(archive.read, 1024 * 1024):
                yield chunk
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tar_name(model_id: str, suffix: str = "") -> str:
    return model_id.replace(":", "_").replace("/", "_") + suffix + ".tar"
