"""Owning a fine-tuned model: its adapter downloaded, the model deleted. Over the real store, scheduler and artifact
store, with training stubbed out."""

from __future__ import annotations

import io
import tarfile

from litestar.testing import TestClient

from engines.adapter_cache import manifest_key
from gateway.services import Services
from tests.gateway.conftest import BASE_INFO
from tests.gateway.test_chat import assert_error
from tests.gateway.test_files_and_jobs import CHAT_LINE, create_job, jsonl, upload, wait_for_status
from tests.jobs.fakes import FakeLauncher


def test_a_fine_tuned_model_is_downloaded_then_deleted_with_its_weights(
    client: TestClient, launcher: FakeLauncher, services: Services
) -> None:
    launcher.artifacts = services.files.artifacts
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    job_id = create_job(client, training_file=file_id).json()["id"]
    wait_for_status(client, job_id, "running")
    launcher.runs[job_id].finish()
    model = wait_for_status(client, job_id, "succeeded")["fine_tuned_model"]
    digest = next(m.digest for m in services.store.list_models() if m.name == model)
    assert digest is not None
    download = client.get(f"/v1/fine_tuning/adapters/{model}")
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        assert sorted(archive.getnames()) == ["adapter_config.json", "adapter_model.safetensors"]
        weights = archive.extractfile("adapter_model.safetensors")
        assert weights is not None and weights.read() == job_id.encode()  # what the stubbed run saved

    response = client.delete(f"/v1/models/{model}")

    assert response.status_code == 200 and response.json() == {"id": model, "deleted": True, "object": "model"}
    assert model not in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert_error(client.get(f"/v1/models/{model}"), 404, code="model_not_found")
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    assert_error(client.post("/v1/chat/completions", json=chat), 404, code="model_not_found")
    assert not services.files.artifacts.exists(manifest_key(digest))
    assert_error(client.delete(f"/v1/models/{model}"), 404, code="model_not_found")
    assert_error(client.get(f"/v1/fine_tuning/adapters/{model}"), 404, code="model_not_found")
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"] == model  # the job keeps its record


def test_shared_and_unknown_models_are_not_deleted(client: TestClient) -> None:
    assert_error(client.delete(f"/v1/models/{BASE_INFO.id}"), 403, code="model_not_deletable")
    assert_error(client.get(f"/v1/fine_tuning/adapters/{BASE_INFO.id}"), 404, code="model_not_found")
    assert_error(client.delete("/v1/models/ft:nothing"), 404, code="model_not_found")
    assert BASE_INFO.id in [m["id"] for m in client.get("/v1/models").json()["data"]]
