"""A local artifact store for the engine tests that need no S3 half; both backends (`store`) are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.artifacts import LocalArtifactStore


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")
