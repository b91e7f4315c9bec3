"""The secrets compose.yaml mounts, made at random and never overwritten."""

from __future__ import annotations

import configparser
from pathlib import Path

from gateway.cluster_secrets import generate


def test_secrets_are_random_consistent_and_kept(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    written = {path.name for path in generate(folder)}
    assert written == {
        "ray_token",
        "postgres_password",
        "s3_access_key",
        "s3_secret_key",
        "s3_credentials",
        "grafana_password",
    }
    assert len((folder / "ray_token").read_text().strip()) == 64
    credentials = configparser.ConfigParser()
    credentials.read(folder / "s3_credentials")
    assert credentials["default"]["aws_access_key_id"] == (folder / "s3_access_key").read_text().strip()
    assert credentials["default"]["aws_secret_access_key"] == (folder / "s3_secret_key").read_text().strip()
    token = (folder / "ray_token").read_text()
    (folder / "postgres_password").unlink()
    assert [path.name for path in generate(folder)] == ["postgres_password"]
    assert (folder / "ray_token").read_text() == token
    other = tmp_path / "other"
    generate(other)
    assert (other / "ray_token").read_text() != token
