"""Files and fine-tuning routes over the real store and scheduler, with training itself stubbed out
(the e2e suite trains for real)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from litestar.testing import TestClient

from tests.gateway.conftest import BASE
from tests.gateway.test_chat import assert_error

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
    dpo = {"type": "dpo", "dpo": {}}
    assert_error(create_job(client, training_file=file_id, method=dpo), 400, param="method.type")
    bad_epochs = {"n_epochs": 0}
    assert_error(create_job(client, training_file=file_id, hyperparameters=bad_epochs), 400, param="n_epochs")
    assert_error(create_job(client, training_file=file_id, suffix="a/b"), 400, param="suffix")
    assert_error(create_job(client, training_file="/etc/passwd"), 400, param="training_file")
    assert_error(create_job(client), 400, param="training_file")


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


def test_malformed_file_fails_job_with_code(client: TestClient) -> None:
    file_id = upload(client, b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n').json()["id"]
    job = create_job(client, training_file=file_id).json()
    failed = wait_for_status(client, job["id"], "failed")
    assert failed["error"]["code"] == "invalid_file_format"
    assert "Line" in failed["error"]["message"]


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
