"""Fine-tuning beyond the supervised loop, end to end with the openai SDK: a DPO job whose model prefers what it was
taught, and a training file larger than one request sent in parts."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.fine_tuning.job_create_params import Method

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform
from tests.e2e.test_fine_tuning import wait_for

pytestmark = pytest.mark.e2e


def answer_logprob(client: openai.OpenAI, url: str, model: str, question: str, answer: str) -> float:
    """log p(answer | question) under `model`, from the platform's own echoed prompt logprobs."""
    asked = [{"role": "user", "content": question}]
    answered = [*asked, {"role": "assistant", "content": answer}]
    prompt = httpx.post(f"{url}/tokenize", json={"messages": asked}).json()["tokens"]
    full = httpx.post(f"{url}/tokenize", json={"messages": answered, "add_generation_prompt": False}).json()["tokens"]
    scored = client.completions.create(model=model, prompt=full, max_tokens=0, echo=True, logprobs=0)
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None
    return sum(value for value in logprobs.token_logprobs[len(prompt) :] if value is not None)


def test_a_dpo_job_makes_a_model_that_prefers_what_it_was_taught(client: openai.OpenAI, platform: Platform) -> None:
    def line(topic: str) -> dict:
        return {
            "input": {"messages": [{"role": "user", "content": f"Tell me one fact about {topic}."}]},
            "preferred_output": [{"role": "assistant", "content": f"Certainly! Here is a fact about {topic}."}],
            "non_preferred_output": [{"role": "assistant", "content": "No. Ask someone else."}],
        }

    topics = ["the moon", "volcanoes", "honey bees", "the Nile", "glaciers", "owls", "comets", "coral reefs"]
    content = "\n".join(json.dumps(line(topic)) for topic in topics * 2).encode()
    uploaded = client.files.create(file=("prefs.jsonl", io.BytesIO(content)), purpose="fine-tune")
    hyperparameters = {"beta": 0.1, "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 5}
    dpo: Method = {"type": "dpo", "dpo": {"hyperparameters": hyperparameters}}  # type: ignore[typeddict-item]
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, method=dpo, suffix="polite")
    done = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded", done.error
    assert done.method is not None and done.method.type == "dpo" and done.method.dpo is not None
    assert done.method.dpo.hyperparameters is not None and done.method.dpo.hyperparameters.beta == 0.1

    def margin(model: str) -> float:  # on a pair it was not trained on
        held_out = line("sharks")
        question = held_out["input"]["messages"][0]["content"]
        preferred, other = held_out["preferred_output"][0]["content"], held_out["non_preferred_output"][0]["content"]
        return answer_logprob(client, platform.url, model, question, preferred) - answer_logprob(
            client, platform.url, model, question, other
        )

    assert margin(done.fine_tuned_model) > margin(BASE_MODEL) + 10


def test_a_file_larger_than_a_request_arrives_in_parts(client: openai.OpenAI, tmp_path: Path) -> None:
    line = {"messages": [{"role": "user", "content": "hi " * 40}, {"role": "assistant", "content": "hello " * 40}]}
    path = tmp_path / "large.jsonl"
    path.write_text("\n".join(json.dumps(line) for _ in range(25_000)))  # about 9 MB; a JSON request may be 8 MiB
    size = path.stat().st_size
    assert size > 8 * 1024 * 1024
    md5 = hashlib.md5(path.read_bytes()).hexdigest()

    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="application/jsonl", purpose="fine-tune", part_size=4 * 1024 * 1024, md5=md5
    )

    assert upload.status == "completed" and upload.file is not None
    assert upload.file.bytes == size and upload.file.status == "processed"
    assert hashlib.md5(client.files.content(upload.file.id).content).hexdigest() == md5
