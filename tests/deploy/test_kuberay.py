"""The KubeRay RayService manifest, checked offline: against the RayService CRD's schema (unknown fields refused,
as the API server would prune them), against the code (the Serve application's import path, Ray's version pin,
the hosts' role resources) and for secrets (token authentication on, every credential from a Secret)."""

from __future__ import annotations

import copy
import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kuberay" / "rayservice.yaml"
CRD = REPO.parent / "shared" / "kuberay" / "ray.io_rayservices.yaml"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever it lists an object's properties."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


@pytest.mark.skipif(not CRD.exists(), reason="KubeRay's RayService CRD is not beside the repository")
def test_the_manifest_matches_the_rayservice_crd(manifest: dict) -> None:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == manifest["apiVersion"].split("/")[1])
    validator = jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))
    assert [error.message for error in validator.iter_errors(manifest)] == []
    broken = copy.deepcopy(manifest)
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParam"] = {}
    assert list(validator.iter_errors(broken))  # the check can fail


def test_the_serve_application_is_the_platform(manifest: dict) -> None:
    (application,) = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    module, attribute = application["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))
    assert application["route_prefix"] == "/"


def test_ray_version_is_the_pin(manifest: dict) -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(re.match(r"ray\[serve\]==(.+)", d) for d in dependencies if d.startswith("ray["))
    assert pin is not None and manifest["spec"]["rayClusterConfig"]["rayVersion"] == pin.group(1)


def test_hosts_offer_their_role_and_the_head_no_model_work(manifest: dict) -> None:
    cluster = manifest["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]["rayStartParams"]
    assert json.loads(json.loads(head["resources"])) == {"head": 1} and head["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    assert json.loads(json.loads(workers["rayStartParams"]["resources"])) == {"worker": 1}


def test_token_authentication_is_on_and_credentials_come_from_secrets(manifest: dict) -> None:
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": "llm-platform-ray-token"}
    pods = [cluster["headGroupSpec"]["template"], *(group["template"] for group in cluster["workerGroupSpecs"])]
    for pod in pods:
        for container in pod["spec"]["containers"]:
            for variable in container["env"]:
                if re.search(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY", variable["name"]):
                    assert "valueFrom" in variable or variable["name"].endswith("_FILE"), variable["name"]
                assert not re.search(r"://[^/@]*:[^/@]*@", variable.get("value", "")), variable["name"]
        mounted = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        assert mounted["postgres-password"]["secret"]["secretName"] == "llm-platform-postgres"
