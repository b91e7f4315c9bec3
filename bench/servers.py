"""Starts and stops the systems under test as separate processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MODEL_DIR = REPO / "var" / "cache" / "SmolLM2-135M-Instruct"
ENGINE_ARGS = {"dtype": "float32", "max-model-len": "4096", "max-lora-rank": "32", "max-loras": "8"}


class Server:
    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.port, self.env, self.log = name, command, port, env, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        print(f"[{self.name}] starting", flush=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    print(f"[{self.name}] ready", flush=True)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(2)
        raise RuntimeError(f"{self.name} did not start; see {self.log}")

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        print(f"[{self.name}] stopped", flush=True)


def platform(port: int, data_dir: Path, log: Path) -> Server:
    env = {
        "SERVE_PORT": str(port),
        "SERVE_HOST": "127.0.0.1",
        "DATA_DIR": str(data_dir),
        "MODEL_CACHE_DIR": str(MODEL_DIR.parent),
    }
    return Server("platform", [sys.executable, "-m", "gateway"], port, env, log)


def vllm_server(port: int, log: Path) -> Server:
    args = [f"--{key}={value}" for key, value in ENGINE_ARGS.items()]
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(MODEL_DIR),
        "--served-model-name",
        MODEL_ID,
        "--enforce-eager",
        "--enable-lora",
        "--port",
        str(port),
        *args,
    ]
    return Server("vllm", command, port, {"VLLM_CPU_KVCACHE_SPACE": "2"}, log)
