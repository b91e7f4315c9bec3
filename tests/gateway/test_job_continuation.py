"""A job may continue training a fine-tuned model or checkpoint: over the real store, scheduler and artifact store,
with training stubbed out (the e2e suite trains a continued job for real)."""

from __future__ import annotations

from litestar.testing import TestClient

from gateway.services import Services
from tests.gateway.conftest import BASE_INFO
from tests.gateway.test_chat import assert_error
from tests.gateway.test_files_and_jobs import CHAT_LINE, create_job, jsonl, upload, wait_for_status
from tests.gateway.test_job_resumption import wait_for_run
from tests.jobs.fakes import FakeLauncher

BASE = BASE_INFO.id


def fine_tuned(client: TestClient, launcher: FakeLauncher, file_id: str) -> dict:
    job_id = create_job(client, training_file=file_id, hyperparameters={"lora_r": 4}).json()["id"]
    wait_for_status(client, job_id, "running")
    launcher.runs[job_id].finish()
    return wait_for_status(client, job_id, "succeeded")


def test_a_continued_job_starts_from_its_parents_weights_and_settings(
    client: TestClient, launcher: FakeLauncher, services: Services
) -> None:
    launcher.artifacts = services.files.artifacts
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    parent = fine_tuned(client, launcher, file_id)
    parent_model = next(m for m in services.store.list_models() if m.name == parent["fine_tuned_model"])

    created = create_job(client, training_file=file_id, model=parent["fine_tuned_model"], suffix="more")
    assert created.status_code == 200, created.text
    job = created.json()
    wait_for_status(client, job["id"], "running")

    run = wait_for_run(launcher, 2)
    assert run.spec.init_adapter == parent_model.digest and run.spec.base_model_id == BASE
    shown = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert shown["model"] == parent["fine_tuned_model"]
    settings = shown["method"]["supervised"]["hyperparameters"]
    assert (settings["lora_r"], settings["lora_alpha"], settings["lora_target_modules"]) == (4, 8, ["q_proj", "v_proj"])
    run.finish()
    done = wait_for_status(client, job["id"], "succeeded")
    assert done["fine_tuned_model"] == f"ft:{BASE}:local:more:{job['id']}"
    card = client.get(f"/v1/models/{done['fine_tuned_model']}").json()
    assert card["parent"] == parent["fine_tuned_model"]


def test_a_continued_job_keeps_its_parents_lora_settings_and_needs_a_model_of_the_caller(
    client: TestClient, launcher: FakeLauncher, services: Services
) -> None:
    launcher.artifacts = services.files.artifacts
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    parent = fine_tuned(client, launcher, file_id)["fine_tuned_model"]

    changed = create_job(client, training_file=file_id, model=parent, hyperparameters={"lora_alpha": 64})
    assert "keeps its LoRA settings" in assert_error(changed, 400, param="lora_alpha")["message"]
    unknown = create_job(client, training_file=file_id, model=parent.replace("ftjob-", "ftjob-x"))
    assert_error(unknown, 404, param="model", code="model_not_found")
