"""No test reaches a model or dataset hub: loaders fail at once, offline, as on the CI machine. Servers the
tests need (PostgreSQL, and moto's S3 server on loopback with dummy credentials) are started here, once per run;
`store` gives each test an artifact store of each backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.artifacts import ArtifactStore, artifact_store_from_url
from tests.engines.stores import new_bucket
from tests.servers import postgres_bindir, postgres_server, s3_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """One PostgreSQL server for the whole run (tests take databases of their own on it)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL's server binaries are not installed (pg_config --bindir)")
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Points boto3, through the variables it reads itself, at moto with dummy credentials: never at real AWS.
    Processes the tests spawn inherit it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return moto_endpoint


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An `ARTIFACT_STORE` value for each backend; S3 gets a fresh bucket and a prefix inside it."""
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("aws_env")
    return f"s3://{new_bucket()}/platform/artifacts"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> ArtifactStore:
    return artifact_store_from_url(store_url, default_root=tmp_path / "unused")
