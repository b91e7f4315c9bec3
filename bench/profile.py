"""Scenario 10: where the engine's time goes. Under the unpaced c=8 load, py-spy samples vLLM's engine core and
its model worker for PROFILE_S, on the platform (base model only, then ADAPTERS adapters in the mix) and on vLLM's
server without LoRA; the raw samples and a summary of the frames with the most inclusive time go to
bench/results/profiles/<date>-<host>/. Then the LoRA products of one eight-adapter step against their floor
(bench.lora_floor)."""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from bench import lora_floor
from bench.adapters import build_adapters
from bench.loadgen import load_generator_priority, run_load
from bench.measure import Row, alternate
from bench.servers import MODEL_ID, REPO, Server, platform, vllm_server

SCENARIO = "profile"
PROFILE_S = 25
RATE_HZ = 100
ADAPTERS = 8
"""The platform is also sampled with this many adapters in the mix (the adapters scenario's largest)."""
ROLES = {"engine-core": "EngineCore", "model-worker": "VLLM::Worker"}
"""Process title fragments of vLLM's two engine processes (the same on the platform and on vLLM's server)."""


def engine_processes() -> dict[str, int]:
    found = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        title = f"{process.info['name'] or ''} {' '.join(process.info['cmdline'] or [])}"
        for role, fragment in ROLES.items():
            if fragment in title:
                found[role] = process.pid
    return found


def inclusive_shares(raw: Path, top: int = 25) -> list[tuple[float, str]]:
    """The `top` frames by share of samples that have them anywhere on the stack (py-spy's raw format:
    `frame;frame;... count` per line; frames keep their file, without line numbers)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = {re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")}
        for frame in frames:
            counts[frame] += samples
    return [(100 * count / total, frame) for frame, count in counts.most_common(top)] if total else []


def profile(system: str, server: Server, out: Path, models: str | list[str] = MODEL_ID) -> Row:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    asyncio.run(run_load(server.url, models, concurrency=8, requests=16, pause_s=0))  # warm, adapters loaded
    recorders = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                str(pid),
                "-r",
                str(RATE_HZ),
                "-d",
                str(PROFILE_S),
                "-f",
                "raw",
                "--nonblocking",
                "-o",
                str(out / f"{system}-{role}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in engine_processes().items()
    ]
    with load_generator_priority():
        result = asyncio.run(run_load(server.url, models, concurrency=8, requests=64, pause_s=0))
    for recorder in recorders:
        recorder.wait()
    summary = [f"# {system}: unpaced c=8, {result.output_tokens_per_s:.1f} tok/s while sampled\n"]
    for raw in sorted(out.glob(f"{system}-*.txt")):
        summary.append(f"\n## {raw.stem}\n")
        summary += [f"- {share:5.1f} % {frame}" for share, frame in inclusive_shares(raw)]
    (out / f"{system}-summary.md").write_text("\n".join(summary) + "\n")
    print(f"    {system}: profile in {out}", flush=True)
    return {"scenario": SCENARIO, "system": system, "tok_s_while_sampled": result.output_tokens_per_s, "folder": str(out)}


def run(work: Path, *, rounds: int, stamp: str) -> list[Row]:
    out = REPO / "bench" / "results" / "profiles" / stamp
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []

    adapters = list(build_adapters(work / "platform" / "adapters", ADAPTERS))

    def on_platform(round_no: int) -> None:
        with platform(8400, work) as server:
            rows.append({**profile("platform", server, out), "round": round_no})
            rows.append({**profile(f"platform-{ADAPTERS}-adapters", server, out, adapters), "round": round_no})

    def on_vllm(round_no: int) -> None:
        with vllm_server(8404, work, lora=False) as server:
            rows.append({**profile("vllm-bare", server, out), "round": round_no})

    systems: list[Callable[[int], None]] = [on_platform, on_vllm]
    alternate(systems, rounds)
    return [*rows, lora_floor.measure()]
