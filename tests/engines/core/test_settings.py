"""Settings that combine several variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.core.settings import Settings, SettingsError


def test_the_database_password_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text("p@ss:w/rd\n")
    settings = Settings(database_url="postgresql://platform@db:5432/platform", database_password_file=str(secret))
    assert settings.store_url == "postgresql://platform:p%40ss%3Aw%2Frd@db:5432/platform"
    assert Settings(database_url="postgresql://u:x@db/p").store_url == "postgresql://u:x@db/p"
    assert Settings(data_dir=str(tmp_path)).store_url == f"sqlite:///{tmp_path.resolve()}/platform.sqlite3"


def test_a_password_file_needs_a_url_without_a_password_and_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no password"):
        _ = Settings(database_url="postgresql://u:x@db/p", database_password_file=str(tmp_path / "f")).store_url
    with pytest.raises(SettingsError, match="cannot be read"):
        _ = Settings(database_url="postgresql://u@db/p", database_password_file=str(tmp_path / "missing")).store_url
