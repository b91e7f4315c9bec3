import socket

import pytest

from engines.core.settings import Settings
from engines.resources import ResourceError
from gateway import bootstrap
from gateway.bootstrap import proxy_port, uses_direct_ingress


@pytest.fixture(autouse=True)
def _no_cluster_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def settings(**env: str) -> Settings:
    return Settings.from_env({"SERVE_HOST": "127.0.0.1", **env})


def test_on_an_own_cluster_the_gateway_replicas_serve_the_port_by_default() -> None:
    assert uses_direct_ingress(settings())


def test_turned_off_serve_s_proxy_serves_it() -> None:
    configured = settings(SERVE_PORT="8123", DIRECT_INGRESS="false")
    assert not uses_direct_ingress(configured)
    assert proxy_port(configured) == 8123


def test_a_joined_cluster_keeps_serve_s_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not uses_direct_ingress(settings())


def test_with_direct_ingress_the_proxy_moves_to_a_free_port() -> None:
    moved = proxy_port(settings(SERVE_PORT="8123"))
    assert moved != 8123
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", moved))


def test_the_plan_waits_for_hosts_to_join_a_growing_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    joined = iter([{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 2.0}])  # the second engine's host joins on the third look
    monkeypatch.setattr(bootstrap.ray, "cluster_resources", lambda: next(joined))
    monkeypatch.setattr(bootstrap, "CLUSTER_POLL_S", 0.01)
    plan = bootstrap.plan_cluster(settings(ENGINE_REPLICAS="2"), wait_s=5)
    assert plan.engine_replicas == 2 and plan.cluster_cpus == 2.0


def test_a_cluster_that_stays_too_small_fails_with_the_plan_s_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap.ray, "cluster_resources", lambda: {"CPU": 1.0})
    monkeypatch.setattr(bootstrap, "CLUSTER_POLL_S", 0.01)
    with pytest.raises(ResourceError, match="2 engine replica"):
        bootstrap.plan_cluster(settings(ENGINE_REPLICAS="2"), wait_s=0.05)
