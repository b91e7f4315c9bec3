"""Scenario 4: a fine-tuning job's training tokens/s against the bare TRL + PEFT script on the same data
and hyperparameters, and the time from the job's `succeeded` to the first successful chat with its model."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import openai
from openai.types.chat import ChatCompletionMessageParam

from bench.measure import Row
from bench.servers import REPO, platform, vllm_server

SCENARIO = "fine-tuning"
HYPERPARAMETERS = {
    "n_epochs": 2,
    "batch_size": 8,
    "learning_rate": 2e-3,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
}
TOPICS = ["the lighthouse", "the harbour", "the old mill", "the north tower", "the river gate", "the market", "the bridge"]


def training_data() -> bytes:
    """64 chat examples with answers of about 40 tokens: enough steps for a stable tokens/s."""
    lines = []
    for index in range(64):
        topic = TOPICS[index % len(TOPICS)]
        answer = (
            f"Visitors to {topic} should arrive before {6 + index % 5} o'clock, bring a lantern and a warm coat, "
            f"and ask the keeper for ticket number {1000 + index}; the tour lasts about {20 + index % 7} minutes."
        )
        question = f"How do I visit {topic}? (request {index})"
        lines.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return "\n".join(json.dumps(line) for line in lines).encode()


def bare_trl(data: Path) -> dict:
    hp = HYPERPARAMETERS
    command = [
        sys.executable,
        "-m",
        "bench.trl_baseline",
        f"--data={data}",
        f"--epochs={hp['n_epochs']}",
        f"--batch-size={hp['batch_size']}",
        f"--learning-rate={hp['learning_rate']}",
        f"--lora-r={hp['lora_r']}",
        f"--lora-alpha={hp['lora_alpha']}",
        f"--lora-dropout={hp['lora_dropout']}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, env=_offline())
    return json.loads(done.stdout.strip().splitlines()[-1])


def platform_job(client: openai.OpenAI, data: bytes, *, epochs: int | None = None) -> dict:
    uploaded = client.files.create(file=("bench.jsonl", io.BytesIO(data)), purpose="fine-tune")
    hyperparameters = {**HYPERPARAMETERS, **({"n_epochs": epochs} if epochs else {})}
    # The LoRA keys are the platform's extensions, outside the SDK's types: sent as they are.
    job = client.fine_tuning.jobs.create(
        model=client.models.list().data[0].id, training_file=uploaded.id, extra_body={"hyperparameters": hyperparameters}
    )
    while job.status not in {"succeeded", "failed", "cancelled"}:
        time.sleep(1)  # gently: a busy poller would take CPU from the training it measures
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded" or job.fine_tuned_model is None or job.finished_at is None:
        raise RuntimeError(f"the benchmark job ended {job.status}: {job.error}")
    while True:
        try:
            question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I visit the market?"}]
            client.chat.completions.create(model=job.fine_tuned_model, messages=question, max_tokens=8)
            break
        except openai.APIError:
            time.sleep(0.05)  # not servable yet
    # From the job's own `finished_at` (whole seconds, so this errs up to 1 s on the long side).
    servable_s = time.time() - job.finished_at
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    trained = next(event for event in events if event.message.startswith("Trained "))
    rate = re.search(r"at ([\d.]+) tokens/s", trained.message)
    assert rate is not None, trained.message
    tokens_per_s = float(rate.group(1))
    return {"trained_tokens": job.trained_tokens, "tokens_per_second": tokens_per_s, "servable_after_s": servable_s}


def run(work: Path, *, rounds: int) -> list[Row]:
    """Per round: the bare script alone, the platform's job, and the bare script again beside an idle vLLM
    server (a resident CPU engine is what costs training speed, on the platform or next to vLLM's server)."""
    data_file = work / "fine-tune.jsonl"
    data_file.write_bytes(training_data())
    rows: list[Row] = []

    def bare(system: str, label: str) -> None:
        result = bare_trl(data_file)
        print(f"    {label}: {result['tokens_per_second']:.1f} tokens/s ({result['trained_tokens']} tokens)", flush=True)
        rows.append({"scenario": SCENARIO, "system": system, "round": round_no, **result})

    for round_no in range(rounds):
        print(f"  round {round_no + 1}/{rounds}", flush=True)
        bare("bare-trl", "bare TRL script, idle machine")
        with platform(8400, work) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
            job = platform_job(client, data_file.read_bytes())
        print(
            f"    platform job: {job['tokens_per_second']:.1f} tokens/s ({job['trained_tokens']} tokens), "
            f"servable {job['servable_after_s']:.2f} s after succeeded",
            flush=True,
        )
        rows.append({"scenario": SCENARIO, "system": "platform", "round": round_no, **job})
        with vllm_server(8401, work):
            bare("bare-trl-beside-vllm-server", "bare TRL script beside an idle vLLM server")
    return rows


def _offline() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
