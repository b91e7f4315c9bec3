"""Scenario 8: one fine-tuning job trained by two Ray Train workers on two hosts against the same job on one
worker (namespaced hosts, as the cluster tests make them: root needed). Both runs have the same effective batch, so
the same steps; what differs is that each step's batch is split over two processes that all-reduce their gradients
over the bridge (gloo). The hosts share this machine's cores: two workers here compete for the cores one worker
already fills, so this measures the distribution's overhead, not the speed-up two real hosts give."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import openai

from bench.finetune import HYPERPARAMETERS, training_data
from bench.measure import Row, in_order
from bench.servers import MODEL_ID
from tests.cluster.hosts import Network
from tests.cluster.platform import Cluster, make_secrets, stores

SCENARIO = "data-parallel"
JOB_TIMEOUT_S = 1800


def job(client: openai.OpenAI, file_id: str, workers: int) -> Row:
    hyperparameters = {**HYPERPARAMETERS, "n_workers": workers}
    created = client.fine_tuning.jobs.create(
        model=MODEL_ID, training_file=file_id, seed=7, extra_body={"hyperparameters": hyperparameters}
    )
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (done := client.fine_tuning.jobs.retrieve(created.id)).status not in {"succeeded", "failed", "cancelled"}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark job is still {done.status} after {JOB_TIMEOUT_S} s")
        time.sleep(2)
    if done.status != "succeeded":
        raise RuntimeError(f"the benchmark job ended {done.status}: {done.error}")
    events = client.fine_tuning.jobs.list_events(created.id, limit=200).data
    trained = next(event for event in events if event.message.startswith("Trained "))
    found = re.search(r"Trained (\d+) tokens in (\d+) steps at ([\d.]+) tokens/s", trained.message)
    assert found is not None, trained.message
    tokens, steps, tokens_per_s = int(found[1]), int(found[2]), float(found[3])
    losses = [event.data["train_loss"] for event in events if event.type == "metrics" and isinstance(event.data, dict)]
    return {
        "trained_tokens": tokens,
        "steps": steps,
        "tokens_per_second": tokens_per_s,
        "steps_per_second": steps * tokens_per_s / tokens,
        "final_loss": losses[0] if losses else None,  # events are newest first
    }


def run(work: Path, *, rounds: int) -> list[Row]:
    rows: list[Row] = []
    root = work / "data-parallel"
    with Network() as network, stores(network):
        # The head's one CPU goes to the engine; each worker host offers one CPU, so a one-worker job trains on one
        # of them and a two-worker job on both.
        cluster = Cluster(network, root, make_secrets(root / "secrets"), NODE_CPUS="1")
        cluster.start_head()
        for name in ("worker-1", "worker-2"):
            cluster.add_worker(name, NODE_CPUS="1")
        cluster.wait_for_nodes(3)
        client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="unused", max_retries=2, timeout=300)
        uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(training_data())), purpose="fine-tune")
        for round_no in range(rounds):
            print(f"  round {round_no + 1}/{rounds}", flush=True)
            for workers in in_order([1, 2], round_no):
                result = job(client, uploaded.id, workers)
                print(
                    f"    {workers} worker(s): {result['steps_per_second']:.3f} steps/s, "
                    f"{result['tokens_per_second']:.1f} tokens/s, final loss {result['final_loss']:.4f}",
                    flush=True,
                )
                rows.append({"scenario": SCENARIO, "system": f"{workers}-workers", "round": round_no, **result})
        cluster.stop_head()
    return rows
