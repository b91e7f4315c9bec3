"""The gateway replica serves SERVE_PORT itself (gateway/listener.py), so no proxy sits between the client
and the gateway; a killed gateway replica is replaced and takes the port again."""

from __future__ import annotations

import time

import openai
import psutil
import pytest

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e

GATEWAY = "ServeReplica:llm-platform:gateway"


def listener(port: int) -> int | None:
    """The pid that listens on `port` on loopback."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return connection.pid
    return None


def test_the_gateway_replica_listens_on_serve_port(platform: Platform) -> None:
    gateways = {proc.pid for proc in platform.processes(GATEWAY)}
    assert len(gateways) == 1
    assert listener(platform.port) in gateways


def test_a_killed_gateway_replica_is_replaced_on_the_same_port(platform: Platform, client: openai.OpenAI) -> None:
    [killed] = platform.processes(GATEWAY)
    killed.kill()
    killed.wait(30)
    killed_at = time.monotonic()
    deadline = killed_at + 180
    while time.monotonic() < deadline:
        replacement = listener(platform.port)
        if replacement is not None and replacement != killed.pid:
            break
        time.sleep(1)
    else:
        pytest.fail("no gateway replica took SERVE_PORT again within 180 s")
    assert replacement in {proc.pid for proc in platform.processes(GATEWAY)}
    print(f"\ngateway replica killed: SERVE_PORT served again after {time.monotonic() - killed_at:.0f}s")
    answer = client.chat.completions.create(model=BASE_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert answer.choices[0].message.content
