"""Starts and stops the real platform (`python -m gateway`: Ray, Serve, vLLM, the default model) as a
user would, in a subprocess, and checks it leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 420
STOP_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    def __init__(self, data_dir: Path, log_path: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "MODEL_CACHE_DIR": str(REPO / "var" / "cache"),
            "SERVE_HOST": "127.0.0.1",
            "SERVE_PORT": str(self.port),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.instance = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def engine_stats(self) -> dict:
        """The engine replica's stats, as `/health` reports them."""
        return httpx.get(f"{self.url}/health", timeout=10).json()["engine"]

    def start(self) -> None:
        self.instance = uuid.uuid4().hex
        env = {**self.env, "PLATFORM_TEST_INSTANCE": self.instance}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the platform exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise RuntimeError(f"the platform did not become healthy in {START_TIMEOUT_S}s; see {self.log_path}")

    def stop(self) -> int:
        """SIGTERM, as a supervisor would; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return code

    def leftover_processes(self) -> list[str]:
        """Processes (Ray's raylet, GCS, workers, vLLM's engine core) that inherited this run's marker."""
        leftovers = []
        for proc in psutil.process_iter(["pid", "name"]):
            try:
                if proc.environ().get("PLATFORM_TEST_INSTANCE") == self.instance:
                    leftovers.append(f"{proc.info['pid']} {proc.info['name']}")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return leftovers

    def processes(self, title: str) -> list[psutil.Process]:
        """This run's processes whose command line (Ray sets it to the actor's name) contains `title`."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("PLATFORM_TEST_INSTANCE") == self.instance and title in " ".join(proc.cmdline()):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def wait_gone(self, timeout_s: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while (left := self.leftover_processes()) and time.monotonic() < deadline:
            time.sleep(1)
        return left
