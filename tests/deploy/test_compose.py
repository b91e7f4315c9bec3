"""compose.yaml and the Dockerfile, checked offline (no Docker engine here): against the Compose specification,
against the code (every variable a setting or a documented Ray/AWS one, the command the multi-host tests run),
and for secrets: none in the files, the image or an environment variable, only the platform's port published."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engines.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
NODES = ("head", "worker")
# Variables a host reads that are not platform settings: Ray's token authentication and head address, and
# boto3's own configuration of the S3 store.
EXTERNAL = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "AWS_ENDPOINT_URL", "AWS_SHARED_CREDENTIALS_FILE"}
EXTERNAL |= {"AWS_DEFAULT_REGION"}
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def settings_names() -> set[str]:
    return {name.upper() for name in Settings.__struct_fields__}


def test_the_file_follows_the_compose_specification(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert check(COMPOSE).returncode == 0, check(COMPOSE).stdout
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("shm_size: 2gb", "shm_sized: 2gb", 1))
    assert check(broken).returncode != 0  # the check can fail


def test_every_variable_the_hosts_get_is_a_setting_or_a_documented_one(compose: dict) -> None:
    known = settings_names() | EXTERNAL
    for name in NODES:
        environment = compose["services"][name]["environment"]
        assert set(environment) <= known, set(environment) - known
        Settings.from_env({key: str(value) for key, value in environment.items()})  # valid values, too


def test_hosts_run_the_node_command_of_this_repository(compose: dict) -> None:
    for name in NODES:
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", "gateway.node", name]
        assert service["build"]["context"] == "." and service["shm_size"]
    worker = compose["services"]["worker"]
    assert worker["environment"]["RAY_ADDRESS"] == "head:6379"
    assert "container_name" not in worker and "ports" not in worker and "volumes" not in worker  # it scales


def test_only_the_platforms_port_is_published(compose: dict) -> None:
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    head = compose["services"]["head"]
    assert published.pop("head") == [f"{head['environment']['SERVE_PORT']}:8000"]
    assert published.pop("grafana") == ["3000:3000"] and compose["services"]["grafana"]["profiles"] == ["monitoring"]
    assert not any(published.values()), published  # Ray's, the database's, the store's and Prometheus' stay inside


def test_named_volumes_are_the_heads_and_the_databases(compose: dict) -> None:
    assert set(compose["volumes"]) == {"head-data", "postgres-data"}


def test_secrets_come_from_files_never_from_the_file_itself(compose: dict) -> None:
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"} and secret["file"] == f"./secrets/{name}"
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                assert key.endswith(("_FILE", "_PATH")) and str(value).startswith("/run/secrets/"), key
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), f"{key} carries a password"
    for name in NODES:
        assert {"ray_token", "postgres_password", "s3_credentials"} <= set(compose["services"][name]["secrets"])
        assert compose["services"][name]["environment"]["RAY_AUTH_MODE"] == "token"


def test_the_image_installs_the_pinned_packages_and_bakes_in_no_secret() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG ENGINE=cpu" in dockerfile and 'pip install ".[${ENGINE}]"' in dockerfile  # the pins of pyproject
    assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|TOKEN|SECRET|ACCESS_KEY)", dockerfile, re.MULTILINE | re.IGNORECASE)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" and "!secrets/" not in ignored  # only the packages reach the build context
