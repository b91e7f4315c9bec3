"""Scenario 6: the platform with its artifacts in S3 (moto's server on loopback, `ARTIFACT_STORE=s3://...`): how
soon a fine-tuned model answers after its job succeeded, and the time to first token of an adapter's first request
when its weights come from S3, when they are already in the node's cache (a second name published with the same
content, so only the engine load remains), and once the adapter is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from bench.adapters import build_adapters
from bench.finetune import platform_job, training_data
from bench.measure import Row
from bench.servers import MODEL_ID, REPO, S3_BUCKET, S3_ENV, platform, s3_server

SCENARIO = "artifact-store"
FIRST_REQUEST_KINDS = ("from-s3", "from-node-cache", "loaded")
SAMPLES = 4  # adapters per round; one TTFT on 2 cores varies by 100-200 ms


def publish(name: str, folder: Path, settings: dict[str, str]) -> None:
    """What an operator does on a cluster: `python -m jobs.admin add-adapter`, against the platform's stores."""
    env = {**os.environ, **settings}
    subprocess.run([sys.executable, "-m", "jobs.admin", "add-adapter", name, str(folder)], cwd=REPO, env=env, check=True)


def ttft_ms(url: str, model: str) -> float:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": 8,
        "stream": True,
    }
    started = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                return (time.perf_counter() - started) * 1000
    raise RuntimeError(f"{model} streamed no content")


def run(work: Path, *, rounds: int, samples: int = SAMPLES) -> list[Row]:
    adapters = build_adapters(work / "artifact-store-adapters", rounds * samples + 1)
    folders = list(adapters.values())
    rows: list[Row] = []
    settings = {"ARTIFACT_STORE": f"s3://{S3_BUCKET}/platform", **S3_ENV}
    with s3_server(work, {}), platform(8410, work, name="platform-s3", **settings) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        admin = {**settings, "DATA_DIR": str(work / "platform-s3")}
        publish("s3-lora-warmup", folders[-1], admin)
        ttft_ms(server.url, "s3-lora-warmup")  # the first adapter load of a process pays extra
        for round_no in range(rounds):
            print(f"  round {round_no + 1}/{rounds}", flush=True)
            job = platform_job(client, training_data(), epochs=1)
            print(f"    ft: model answering {job['servable_after_s']:.2f} s after succeeded (S3 store)", flush=True)
            rows.append({"scenario": SCENARIO, "system": "platform-s3", "round": round_no, **job})
            measured: dict[str, list[float]] = {kind: [] for kind in FIRST_REQUEST_KINDS}
            for sample in range(samples):
                name = f"s3-lora-{round_no}-{sample}"
                publish(name, folders[round_no * samples + sample], admin)
                publish(f"{name}-again", folders[round_no * samples + sample], admin)  # same digest: cached
                ttft_ms(server.url, MODEL_ID)
                measured["from-s3"].append(ttft_ms(server.url, name))
                measured["from-node-cache"].append(ttft_ms(server.url, f"{name}-again"))
                measured["loaded"].append(ttft_ms(server.url, name))
            print(
                "    first-request TTFT: "
                + ", ".join(f"{kind} {' '.join(f'{v:.0f}' for v in values)} ms" for kind, values in measured.items()),
                flush=True,
            )
            for kind, values in measured.items():
                rows += [
                    {"scenario": SCENARIO, "system": f"adapter-{kind}", "round": round_no, "ttft_ms": value}
                    for value in values
                ]
    return rows
