"""Files and fine-tuning routes over the real store and scheduler, with training itself stubbed out
(the e2e suite trains for real)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.services import Services, build_services
from jobs.results import StepMetrics
from tests.gateway.conftest import BASE, BASE_INFO, PLAN
from tests.gateway.test_chat import assert_error
from tests.jobs.fakes import FakeLauncher

CHAT_LINE = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def upload(client: TestClient, content: bytes, name: str = "train.jsonl", purpose: str = "fine-tune"):
    return client.post("/v1/files", files={"file": (name, content)}, data={"purpose": purpose})


def jsonl(lines: list[dict]) -> bytes:
    return "\n".join(json.dumps(line) for line in lines).encode()


def wait_for_status(client: TestClient, job_id: str, status: str, timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] == status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {job['status']}, not {status}")


def test_file_lifecycle(client: TestClient) -> None:
    content = jsonl([CHAT_LINE])
    created = upload(client, content, name="../../etc/pass wd.jsonl")
    assert created.status_code == 200, created.text
    file = created.json()
    assert file["id"].startswith("file-") and file["object"] == "file"
    assert file["bytes"] == len(content) and file["purpose"] == "fine-tune"
    assert file["filename"] == "pass wd.jsonl"
    assert client.get(f"/v1/files/{file['id']}").json() == file
    assert client.get(f"/v1/files/{file['id']}/content").content == content
    second = upload(client, b"{}", purpose="batch").json()
    listed = client.get("/v1/files", params={"limit": 1}).json()
    assert listed["object"] == "list" and listed["has_more"] is True
    assert [f["id"] for f in listed["data"]] == [second["id"]]
    assert [f["id"] for f in client.get("/v1/files", params={"purpose": "fine-tune"}).json()["data"]] == [file["id"]]
    ascending = client.get("/v1/files", params={"order": "asc"}).json()["data"]
    assert [f["id"] for f in ascending] == [file["id"], second["id"]]
    assert client.delete(f"/v1/files/{file['id']}").json() == {"id": file["id"], "object": "file", "deleted": True}
    assert_error(client.get(f"/v1/files/{file['id']}"), 404)
    assert_error(client.get(f"/v1/files/{file['id']}/content"), 404)


def test_file_errors(client: TestClient) -> None:
    assert_error(upload(client, b"x" * 5000), 413, param="file")
    assert_error(upload(client, b"{}", purpose="nonsense"), 400, param="purpose")
    assert_error(client.post("/v1/files", data={"purpose": "fine-tune"}), 400, param="file")
    assert_error(client.get("/v1/files", params={"limit": "zero"}), 400, param="limit")


def create_job(client: TestClient, **body):
    return client.post("/v1/fine_tuning/jobs", json={"model": BASE, **body})


def test_job_create_rejections(client: TestClient) -> None:
    file_id = upload(client, jsonl([CHAT_LINE])).json()["id"]
    assert_error(create_job(client, training_file="file-missing"), 400, param="training_file")
    assert_error(create_job(client, training_file=file_id, model="other"), 404, param="model")
    reinforcement = {"type": "reinforcement", "reinforcement": {}}
    assert_error(create_job(client, training_file=file_id, method=reinforcement), 400, param="method.type")
    bad_epochs = {"n_epochs": 0}
    assert_error(create_job(client, training_file=file_id, hyperparameters=bad_epochs), 400, param="n_epochs")
    assert_error(create_job(client, training_file=file_id, suffix="a/b"), 400, param="suffix")
    assert_error(create_job(client, training_file="/etc/passwd"), 400, param="training_file")
    assert_error(create_job(client), 400, param="training_file")
    wandb = [{"type": "wandb", "wandb": {"project": "p"}}]
    error = assert_error(create_job(client, training_file=file_id, integrations=wandb), 400, param="integrations")
    assert "Weights & Biases" in error["message"]
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == []  # nothing was created by a refused request


def test_job_lifecycle_until_training(client: TestClient) -> None:
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "lora_r": 8}}}
    created = create_job(client, training_file=file_id, method=method, suffix="demo", metadata={"team": "a"})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["id"].startswith("ftjob-") and job["object"] == "fine_tuning.job"
    assert job["status"] == "validating_files" and job["fine_tuned_model"] is None
    assert isinstance(job["seed"], int) and job["organization_id"] == "local"
    job = wait_for_status(client, job["id"], "running")
    assert job["hyperparameters"] == {"batch_size": 1, "learning_rate_multiplier": 1.0, "n_epochs": 2}
    other = create_job(client, training_file=file_id, hyperparameters={"batch_size": 2}).json()
    page = client.get("/v1/fine_tuning/jobs", params={"limit": 1}).json()
    assert page["has_more"] is True and [j["id"] for j in page["data"]] == [other["id"]]
    after = client.get("/v1/fine_tuning/jobs", params={"limit": 1, "after": other["id"]}).json()
    assert [j["id"] for j in after["data"]] == [job["id"]]
    tagged = client.get("/v1/fine_tuning/jobs", params={"metadata[team]": "a"}).json()["data"]
    assert [j["id"] for j in tagged] == [job["id"]]
    events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
    assert events[0]["message"] == "Fine-tuning job started"
    assert events[1]["message"].startswith("Files validated (4 examples)")
    assert events[-1]["message"].startswith("Created fine-tuning job")
    assert all(e["id"].startswith("ftevent-") and e["object"] == "fine_tuning.job.event" for e in events)
    cancelled = client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert_error(client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel"), 400)
    assert client.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints").json()["data"] == []
    assert_error(client.get("/v1/fine_tuning/jobs/ftjob-nope"), 404)


def test_a_malformed_training_file_is_flagged_at_upload_and_refused_by_jobs(client: TestClient) -> None:
    file = upload(client, b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n').json()
    assert file["status"] == "error" and file["status_details"].startswith("Line 1: ")
    assert client.get(f"/v1/files/{file['id']}").json()["status_details"] == file["status_details"]
    for param in ("training_file", "validation_file"):
        body = {"training_file": upload(client, jsonl([CHAT_LINE])).json()["id"], param: file["id"]}
        error = assert_error(create_job(client, **body), 400, param=param, code="invalid_file_format")
        assert file["status_details"] in error["message"]
    assert client.get("/v1/fine_tuning/jobs").json()["data"] == []
    good = upload(client, jsonl([CHAT_LINE])).json()
    assert good["status"] == "processed" and good["status_details"] is None
    assert upload(client, b"not json", purpose="batch").json()["status"] == "processed"  # only fine-tune files


def test_a_file_expires(client: TestClient, services: Services) -> None:
    file = client.post(
        "/v1/files",
        files={"file": ("a.jsonl", jsonl([CHAT_LINE]))},
        data={"purpose": "fine-tune", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
    ).json()
    assert file["expires_at"] == file["created_at"] + 3600
    for seconds in ("60", "2592001"):
        refused = client.post(
            "/v1/files",
            files={"file": ("a.jsonl", jsonl([CHAT_LINE]))},
            data={"purpose": "fine-tune", "expires_after[anchor]": "created_at", "expires_after[seconds]": seconds},
        )
        assert_error(refused, 400, param="expires_after.seconds")
    assert [f["id"] for f in client.get("/v1/files").json()["data"]] == [file["id"]]
    services.files.clock = lambda: file["expires_at"] + 1
    assert client.get("/v1/files").json()["data"] == []
    assert_error(client.get(f"/v1/files/{file['id']}"), 404)
    assert_error(create_job(client, training_file=file["id"]), 400, param="training_file", code="file_not_found")


def test_seed_routes_confine_paths(client: TestClient, settings) -> None:
    assert_error(client.post("/fine-tune", json={"dataset_path": "/etc/passwd"}), 400, param="dataset_path")
    assert_error(client.post("/fine-tune", json={"dataset_path": "../x.jsonl"}), 400, param="dataset_path")
    dataset = Path(settings.data_dir) / "train.jsonl"
    dataset.parent.mkdir(parents=True, exist_ok=True)
    dataset.write_bytes(jsonl([CHAT_LINE] * 2))
    outside = {"dataset_path": "train.jsonl", "output_path": "/tmp/elsewhere"}
    assert_error(client.post("/fine-tune", json=outside), 400, param="output_path")
    job = client.post("/fine-tune", json={"dataset_path": "train.jsonl", "output_path": "out/adapter"}).json()
    assert job["status"] == "validating_files"
    assert [j["id"] for j in client.get("/jobs").json()["data"]] == [job["id"]]
    assert client.get(f"/jobs/{job['id']}").json()["id"] == job["id"]
    assert client.delete(f"/jobs/{job['id']}").json()["status"] == "cancelled"


def wait_for_event(client: TestClient, job_id: str, text: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
        if any(text in event["message"] for event in events):
            return
        time.sleep(0.05)
    raise AssertionError(f"no event with {text!r} for job {job_id}")


def test_whole_number_floats_are_stored_as_integers(client: TestClient) -> None:
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    hyperparameters = {"n_epochs": 2.0, "batch_size": 2.0, "learning_rate_multiplier": 1}
    created = create_job(client, training_file=file_id, hyperparameters=hyperparameters)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").status_code == 200
    assert [job["id"] for job in client.get("/v1/fine_tuning/jobs").json()["data"]] == [job_id]
    running = wait_for_status(client, job_id, "running")
    assert running["hyperparameters"] == {"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 1.0}
    assert type(running["hyperparameters"]["n_epochs"]) is int


def test_unreadable_job_records_are_failed_and_the_rest_is_served(
    client: TestClient, settings, engine, services: Services
) -> None:
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    two_epochs = {"n_epochs": 2}
    old, broken, fine = (
        create_job(client, training_file=file_id, hyperparameters=two_epochs).json()["id"] for _ in range(3)
    )
    for job_id in (old, broken, fine):
        client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
    database = sqlite3.connect(settings.store_path)
    body = json.loads(database.execute("SELECT body FROM jobs WHERE id = ?", (old,)).fetchone()[0])
    body["status"], body["hyperparameters"]["n_epochs"] = "queued", 2.0  # as an older release stored it
    database.execute("UPDATE jobs SET status = 'queued', body = ? WHERE id = ?", (json.dumps(body), old))
    database.execute("UPDATE jobs SET status = 'queued', body = ? WHERE id = ?", (b'{"id": 7, "hyperpa', broken))
    database.commit()
    # A new app over the same data: its start-up recovery reads every active job.
    restarted = build_services(settings, PLAN, BASE_INFO, launcher=FakeLauncher())
    app = create_app(settings, engine, restarted)
    with TestClient(app) as again:
        listed = {job["id"]: job for job in again.get("/v1/fine_tuning/jobs").json()["data"]}
        assert set(listed) == {old, broken, fine}
        assert listed[fine]["status"] == "cancelled"
        assert listed[broken]["status"] == "failed" and listed[broken]["error"]["code"] == "unreadable_record"
        assert again.get(f"/v1/fine_tuning/jobs/{broken}").json()["status"] == "failed"
        recovered = wait_for_status(again, old, "running")
        assert recovered["hyperparameters"]["n_epochs"] == 2


def test_a_cancel_answered_before_the_run_finishes_wins(client: TestClient, launcher: FakeLauncher) -> None:
    """The run's last step check is behind it when the cancel comes, so it finishes anyway: no model is published."""
    launcher.obeys_cancel = False
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    job_id = create_job(client, training_file=file_id, suffix="late").json()["id"]
    wait_for_status(client, job_id, "running")
    run = launcher.runs[job_id]
    run.report_step(StepMetrics(step=1, train_loss=1.0), total_steps=1, checkpoint=True)
    wait_for_event(client, job_id, "Step 1/1")
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    run.finish()
    wait_for_event(client, job_id, "no model was published")
    job = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["fine_tuned_model"] is None and job["result_files"] == []
    models = [model["id"] for model in client.get("/v1/models").json()["data"]]
    assert models == [BASE]
    checkpoint = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"][0]
    body = {"model": checkpoint["fine_tuned_model_checkpoint"], "messages": [{"role": "user", "content": "hi"}]}
    assert_error(client.post("/v1/chat/completions", json=body), 404, code="model_not_found")


def test_checkpoints_and_metric_events_keep_every_metric(client: TestClient, launcher: FakeLauncher) -> None:
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    job_id = create_job(client, training_file=file_id).json()["id"]
    wait_for_status(client, job_id, "running")
    row = StepMetrics(
        step=2,
        train_loss=0.5,
        train_accuracy=0.75,
        valid_loss=0.625,
        valid_mean_token_accuracy=0.5,
        full_valid_loss=0.75,
        full_valid_mean_token_accuracy=0.25,
    )
    launcher.runs[job_id].report_step(row, total_steps=2, checkpoint=True)
    launcher.runs[job_id].finish()
    job = wait_for_status(client, job_id, "succeeded")
    metrics = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"][0]["metrics"]
    assert metrics == {
        "step": 2,
        "train_loss": 0.5,
        "train_mean_token_accuracy": 0.75,
        "valid_loss": 0.625,
        "valid_mean_token_accuracy": 0.5,
        "full_valid_loss": 0.75,
        "full_valid_mean_token_accuracy": 0.25,
    }
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    data = next(event["data"] for event in events if event["type"] == "metrics")
    assert data["train_mean_token_accuracy"] == 0.75 and data["valid_mean_token_accuracy"] == 0.5
    assert data["full_valid_loss"] == 0.75 and data["full_valid_mean_token_accuracy"] == 0.25
    assert job["fine_tuned_model"] in [model["id"] for model in client.get("/v1/models").json()["data"]]


PREFERENCE_LINE = {
    "input": {"messages": [{"role": "user", "content": "hi"}]},
    "preferred_output": [{"role": "assistant", "content": "Hello! How can I help?"}],
    "non_preferred_output": [{"role": "assistant", "content": "What."}],
}


def test_dpo_jobs_train_on_preferences_with_their_beta(client: TestClient, launcher: FakeLauncher) -> None:
    preferences = upload(client, jsonl([PREFERENCE_LINE] * 4)).json()["id"]
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2}}}
    job = create_job(client, training_file=preferences, method=dpo).json()
    wait_for_status(client, job["id"], "running")
    spec = launcher.runs[job["id"]].spec
    assert spec.method == "dpo" and spec.hyperparameters.beta == 0.2 and spec.hyperparameters.n_epochs == 2
    method = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["method"]
    assert method["type"] == "dpo" and method["supervised"] is None
    assert method["dpo"]["hyperparameters"]["beta"] == 0.2 and method["dpo"]["hyperparameters"]["lora_r"] == 16


def test_each_method_refuses_the_others_data_and_settings(client: TestClient) -> None:
    preferences = upload(client, jsonl([PREFERENCE_LINE] * 4)).json()["id"]
    chats = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1}}}
    with_beta = {"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}
    assert_error(create_job(client, training_file=chats, method=with_beta), 400, param="beta")
    assert_error(create_job(client, training_file=preferences, validation_file=preferences, method=dpo), 400)
    for training_file, method in ((chats, dpo), (preferences, None)):
        body = {"training_file": training_file, **({"method": method} if method else {})}
        failed = wait_for_status(client, create_job(client, **body).json()["id"], "failed")
        assert failed["error"]["code"] == "invalid_training_file" and "job needs" in failed["error"]["message"]
