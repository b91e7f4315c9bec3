"""Scenario 9: start-up and recovery. `make run` (already set up) to `/health` 200 against vLLM's own server
(no LoRA) started the same way, alternating their order; then, on the platform, its engine replica SIGKILLed and
the time until a chat completion is answered again."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from bench.measure import Row, alternate
from bench.servers import MODEL_ID, Server, platform, vllm_server

SCENARIO = "start-up"
ENGINE_REPLICA = "ServeReplica:llm-platform:engine"
RECOVERY_LIMIT_S = 600


def make_run(port: int, work: Path) -> Server:
    """The platform as a user starts it: `make run`, with the environment bench.servers.platform gives."""
    server = platform(port, work, name="platform-make-run")
    server.command = ["make", "--no-print-directory", "run"]
    server.signal_children = True
    return server


def answers(url: str) -> bool:
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    try:
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def kill_engine_replicas() -> int:
    """SIGKILLs every engine replica process (Serve's replica actor, which holds the vLLM engine)."""
    killed = 0
    for process in psutil.process_iter(["cmdline"]):
        if ENGINE_REPLICA in " ".join(process.info["cmdline"] or []):
            process.send_signal(signal.SIGKILL)
            killed += 1
    return killed


def recovery_s(url: str) -> float:
    """Seconds from the kill until a chat completion is answered again."""
    if not kill_engine_replicas():
        raise RuntimeError("no engine replica process found")
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < RECOVERY_LIMIT_S:
        if answers(url):
            return time.monotonic() - killed_at
        time.sleep(0.25)
    raise RuntimeError(f"the platform did not answer within {RECOVERY_LIMIT_S} s of its engine replica's death")


def run(work: Path, *, rounds: int) -> list[Row]:
    rows: list[Row] = []

    def on_platform(round_no: int) -> None:
        with make_run(8400, work) as server:
            rows.append({"scenario": SCENARIO, "system": "platform", "round": round_no, "ready_s": server.started_in_s})
            if not answers(server.url):
                raise RuntimeError("the platform was healthy but did not answer")
            recovered = recovery_s(server.url)
            print(f"    platform: ready in {server.started_in_s:.1f} s, answering {recovered:.1f} s after the kill")
            rows.append({"scenario": SCENARIO, "system": "platform-recovery", "round": round_no, "recovered_s": recovered})

    def on_vllm(round_no: int) -> None:
        with vllm_server(8404, work, lora=False) as server:
            rows.append({"scenario": SCENARIO, "system": "vllm-bare", "round": round_no, "ready_s": server.started_in_s})

    systems: list[Callable[[int], None]] = [on_platform, on_vllm]
    alternate(systems, rounds)
    return rows
