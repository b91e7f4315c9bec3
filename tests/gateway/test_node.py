"""`python -m gateway.node`: the `ray start` each host role runs (the multi-host tests run them for real)."""

from __future__ import annotations

import json
import sys

import pytest

from engines.core.settings import Settings, SettingsError
from gateway.node import main, node_ip, ray_start_command


def options(command: list[str]) -> dict[str, str]:
    return dict(part.removeprefix("--").split("=", 1) for part in command if part.startswith("--") and "=" in part)


def test_the_head_starts_ray_with_its_role_and_no_dashboard() -> None:
    command = ray_start_command("head", Settings(node_cpus=1), ip="10.0.0.1", head_address=None)
    assert command[:4] == [sys.executable, "-m", "ray.scripts.scripts", "start"]
    assert {"--head", "--block", "--disable-usage-stats"} <= set(command)
    flags = options(command)
    assert flags["node-ip-address"] == "10.0.0.1" and flags["port"] == "6379" and flags["num-cpus"] == "1"
    assert json.loads(flags["resources"]) == {"head": 1} and flags["include-dashboard"] == "false"


def test_a_worker_joins_the_head_with_its_role() -> None:
    settings = Settings(node_object_store_bytes=100_000_000)
    flags = options(ray_start_command("worker", settings, ip="10.0.0.2", head_address="10.0.0.1:6379"))
    assert flags["address"] == "10.0.0.1:6379" and json.loads(flags["resources"]) == {"worker": 1}
    assert flags["object-store-memory"] == "100000000" and "num-cpus" not in flags
    with pytest.raises(SettingsError, match="RAY_ADDRESS"):
        ray_start_command("worker", settings, ip="10.0.0.2", head_address=None)


def test_the_node_address_is_the_setting_or_the_route_to_the_head() -> None:
    assert node_ip(Settings(node_ip_address="10.0.0.9"), "10.0.0.1:6379") == "10.0.0.9"
    assert node_ip(Settings(), "127.0.0.1:6379") == "127.0.0.1"


def test_an_unknown_role_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway"]) == 2
    assert "usage" in capsys.readouterr().err
