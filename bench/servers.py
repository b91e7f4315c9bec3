"""Starts and stops the systems under test as separate processes on loopback, all on the same weights and
engine settings: the platform, vLLM's own OpenAI server, LiteLLM's proxy in front of it, Ray Serve LLM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MODEL_DIR = REPO / "var" / "cache" / "SmolLM2-135M-Instruct"
PEERS_VENV = REPO / ".venv-peers"
S3_PORT = 8409
S3_BUCKET = "bench-adapters"
S3_ENV = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{S3_PORT}",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
KV_CACHE_GIB = "2"
# The engine settings every system gets (the platform's defaults on CPU).
ENGINE_ARGS = {"dtype": "float32", "max-model-len": "4096", "max-lora-rank": "32", "max-loras": "8"}


class Server:
    """One system under test: a process group started on enter, ready once `ready_path` answers 200,
    stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(
        self, name: str, command: list[str], port: int, log: Path, env: dict[str, str], ready_path: str = "/health"
    ) -> None:
        self.name, self.command, self.port, self.log, self.env = name, command, port, log, env
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0
        self.signal_children = False
        """Stop the process's children (the command `make` runs), not the process itself."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        print(f"  [{self.name}] starting (log: {self.log})", flush=True)
        started = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < 900:
            if self.process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=5).status_code == 200:
                    self.started_in_s = time.monotonic() - started
                    print(f"  [{self.name}] ready in {self.started_in_s:.0f} s", flush=True)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)  # fine enough to time a start-up (bench.startup)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not start; see {self.log}")

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            if self.signal_children:  # `make` does not pass a SIGTERM on to the command it runs
                for child in psutil.Process(self.process.pid).children():
                    child.send_signal(signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever the group left behind
        print(f"  [{self.name}] stopped", flush=True)


def platform(port: int, work: Path, *, name: str = "platform", **settings: str) -> Server:
    env = {
        "SERVE_PORT": str(port),
        "SERVE_HOST": "127.0.0.1",
        "DATA_DIR": str(work / name),
        "MODEL_CACHE_DIR": str(MODEL_DIR.parent),
        "KV_CACHE_GIB": KV_CACHE_GIB,
        "LOG_LEVEL": "warning",
        **settings,
    }
    return Server(name, [sys.executable, "-m", "gateway"], port, work / f"{name}.log", env)


def vllm_server(port: int, work: Path, *, adapters: dict[str, Path] | None = None, lora: bool = True) -> Server:
    """vLLM's OpenAI server; with `lora=False` started as its docs show for a base model (no `--enable-lora`,
    no LoRA settings): the bare engine the platform's base-model traffic is measured against."""
    engine_args = ENGINE_ARGS if lora else {key: value for key, value in ENGINE_ARGS.items() if "lora" not in key}
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(MODEL_DIR),
        "--served-model-name",
        MODEL_ID,
        "--enforce-eager",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *(f"--{key}={value}" for key, value in engine_args.items()),
    ]
    if lora:
        command.append("--enable-lora")
    if adapters:
        command += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    name = "vllm-server" if lora else "vllm-bare"
    return Server(name, command, port, work / f"{name}.log", {"VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB})


def litellm_proxy(port: int, work: Path, upstream: str) -> Server:
    """LiteLLM's proxy (from the peers' venv, see `make bench`) forwarding to vLLM's server as an OpenAI-compatible
    backend; extra body fields such as `ignore_eos` pass through to vLLM."""
    config = work / "litellm.json"  # YAML is a superset of JSON
    model = {"model": f"hosted_vllm/{MODEL_ID}", "api_base": f"{upstream}/v1", "api_key": "none"}
    config.write_text(
        json.dumps(
            {
                "model_list": [{"model_name": MODEL_ID, "litellm_params": model}],
                "litellm_settings": {"drop_params": False, "request_timeout": 600},
            }
        )
    )
    command = [str(PEERS_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    # No key, like every other system here (all on loopback); LiteLLM refuses that unless told.
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    }
    return Server("litellm-proxy", command, port, work / "litellm-proxy.log", env, ready_path="/health/liveliness")


def ray_serve_llm(port: int, work: Path, *, adapters: bool = False) -> Server:
    """With `adapters`, LoRA adapters load from the local S3 (`s3_server`): Ray Serve LLM reads them
    from cloud storage only."""
    command = [sys.executable, "-m", "bench.rayllm_app", "--port", str(port)]
    if adapters:
        command += ["--lora-path", f"s3://{S3_BUCKET}/loras"]
    return Server("ray-serve-llm", command, port, work / "ray-serve-llm.log", S3_ENV, ready_path="/v1/models")


def s3_server(work: Path, adapters: dict[str, Path]) -> Server:
    """moto's S3 on loopback, holding `adapters` under s3://bench-adapters/loras/<name>/."""
    command = [str(PEERS_VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)]
    return _S3(command, work, adapters)


class _S3(Server):
    def __init__(self, command: list[str], work: Path, adapters: dict[str, Path]) -> None:
        super().__init__("local-s3", command, S3_PORT, work / "local-s3.log", {}, ready_path="/moto-api/")
        self.adapters = adapters

    def __enter__(self) -> Server:
        super().__enter__()
        try:
            self._upload()
        except Exception:
            self.__exit__()
            raise
        return self

    def _upload(self) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=S3_ENV["AWS_ENDPOINT_URL"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=S3_BUCKET)
        for name, folder in self.adapters.items():
            for file in folder.iterdir():
                client.upload_file(str(file), S3_BUCKET, f"loras/{name}/{file.name}")
