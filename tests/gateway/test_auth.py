"""API keys and ownership: two keys, each owner sees only what is theirs; shared models for all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from engines.adapters import Adapter
from engines.core.settings import Settings, SettingsError
from gateway.app import create_app
from gateway.auth import KeyRing
from gateway.services import Services
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeEngine
from tests.gateway.test_chat import assert_error

ALICE = {"Authorization": "Bearer sk-alice-0123456789"}
BOB = {"Authorization": "Bearer sk-bob-0123456789"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    keys = "alice=sk-alice-0123456789,bob=sk-bob-0123456789"
    return Settings(data_dir=str(tmp_path / "data"), model_name=BASE, api_keys=keys, max_upload_bytes=4096)


@pytest.fixture
def secured(engine: FakeEngine, settings: Settings, services: Services) -> Iterator[TestClient]:
    app = create_app(settings, engine, services)
    with TestClient(app) as client:
        yield client


def chat(client: TestClient, headers: dict, model: str = BASE):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def test_keys_are_required_except_for_health(secured: TestClient) -> None:
    assert secured.get("/health").status_code == 200
    assert_error(secured.get("/v1/models"), 401, code="invalid_api_key")
    assert_error(secured.get("/v1/models", headers={"Authorization": "Bearer sk-wrong-key"}), 401, code="invalid_api_key")
    assert_error(secured.post("/chat", json={"prompt": "hi"}), 401, code="invalid_api_key")
    assert_error(secured.get("/jobs"), 401, code="invalid_api_key")
    assert secured.get("/v1/models", headers=ALICE).status_code == 200
    assert chat(secured, BOB).status_code == 200


def test_files_and_jobs_belong_to_their_owner(secured: TestClient) -> None:
    line = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    uploaded = secured.post(
        "/v1/files", files={"file": ("t.jsonl", json.dumps(line).encode())}, data={"purpose": "fine-tune"}, headers=ALICE
    ).json()
    assert_error(secured.get(f"/v1/files/{uploaded['id']}", headers=BOB), 404)
    assert_error(secured.get(f"/v1/files/{uploaded['id']}/content", headers=BOB), 404)
    assert_error(secured.delete(f"/v1/files/{uploaded['id']}", headers=BOB), 404)
    assert secured.get("/v1/files", headers=BOB).json()["data"] == []
    bob_job = {"model": BASE, "training_file": uploaded["id"]}
    assert_error(secured.post("/v1/fine_tuning/jobs", json=bob_job, headers=BOB), 400, param="training_file")
    job = secured.post("/v1/fine_tuning/jobs", json=bob_job, headers=ALICE).json()
    assert job["organization_id"] == "alice"
    assert_error(secured.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=BOB), 404)
    assert_error(secured.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel", headers=BOB), 404)
    assert_error(secured.get(f"/v1/fine_tuning/jobs/{job['id']}/events", headers=BOB), 404)
    assert_error(secured.delete(f"/jobs/{job['id']}", headers=BOB), 404)
    assert secured.get("/v1/fine_tuning/jobs", headers=BOB).json()["data"] == []
    assert [j["id"] for j in secured.get("/v1/fine_tuning/jobs", headers=ALICE).json()["data"]] == [job["id"]]


def test_fine_tuned_models_belong_to_their_owner(secured: TestClient, services: Services) -> None:
    name = f"ft:{BASE}:alice:x:ftjob-1"
    model = Adapter(name=name, path="/adapters/x", parent=BASE, owner="alice", created=1, job_id="ftjob-1")
    services.store.add_model(model)
    alice_models = {m["id"]: m for m in secured.get("/v1/models", headers=ALICE).json()["data"]}
    assert alice_models[name]["owned_by"] == "alice"
    assert name not in {m["id"] for m in secured.get("/v1/models", headers=BOB).json()["data"]}
    assert_error(secured.get(f"/v1/models/{name}", headers=BOB), 404)
    assert_error(chat(secured, BOB, model=name), 404, code="model_not_found")
    assert chat(secured, ALICE, model=name).status_code == 200


@pytest.mark.parametrize("keys", ["bad name=sk-1", "a=", "sk-1,sk-1"])
def test_bad_key_settings_are_refused(tmp_path: Path, keys: str) -> None:
    with pytest.raises(SettingsError, match="API_KEYS"):
        KeyRing.from_settings(Settings(api_keys=keys))


def test_keys_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\ncarol=sk-carol-1\nsk-anonymous-2\n")
    ring = KeyRing.from_settings(Settings(api_keys_file=str(keys_file)))
    assert ring is not None and ring.owner_for("sk-carol-1") == "carol"
    anonymous = ring.owner_for("sk-anonymous-2")
    assert anonymous is not None and anonymous.startswith("key-")
    assert ring.owner_for("sk-nope") is None
