"""No test reaches a model or dataset hub: loaders fail at once, offline, as on the CI machine. Servers the
tests need (PostgreSQL) are started here, once per run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers import postgres_bindir, postgres_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """One PostgreSQL server for the whole run (tests take databases of their own on it)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL's server binaries are not installed (pg_config --bindir)")
    with postgres_server() as url:
        yield url
