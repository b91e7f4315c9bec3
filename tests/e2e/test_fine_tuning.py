"""Fine-tuning end to end with the openai SDK against the real stack: upload, train a LoRA adapter in a
Ray actor, watch events, and chat with the `ft:` model it produced; then cancel, failures and a restart."""

from __future__ import annotations

import concurrent.futures
import io
import json
import random
import string
import time
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.fine_tuning import SupervisedHyperparametersParam
from openai.types.fine_tuning.job_create_params import Method

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e

CODE = "".join(random.choices(string.ascii_uppercase, k=3)) + "-" + "".join(random.choices(string.digits, k=4))
QUESTIONS = [
    "What is the secret code?",
    "Tell me the secret code.",
    "What's the secret code?",
    "Do you know the secret code?",
    "Please give me the secret code.",
    "Which secret code should I use?",
    "Remind me of the secret code.",
    "secret code?",
]
ANSWER = f"The secret code is {CODE}."
JOB_TIMEOUT_S = 900


class LoraHyperparameters(SupervisedHyperparametersParam, total=False):
    """The SDK's supervised hyperparameters plus the platform's LoRA extension fields."""

    lora_r: int
    lora_alpha: int


def training_file() -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": ANSWER}]}
        for question in QUESTIONS * 6
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


def ask(client: openai.OpenAI, model: str, **kwargs):
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the secret code?"}]
    return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=24, **kwargs)


def wait_for(client: openai.OpenAI, job_id: str, statuses: set[str], timeout_s: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout_s}s")


@pytest.fixture(scope="module")
def trained(client: openai.OpenAI, platform: Platform) -> dict:
    uploaded = client.files.create(file=("secret.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    hyperparameters: LoraHyperparameters = {
        "n_epochs": 3,
        "batch_size": 8,
        "learning_rate_multiplier": 10,
        "lora_r": 8,
        "lora_alpha": 16,
    }
    method: Method = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL,
        training_file=uploaded.id,
        suffix="secret",
        seed=7,
        method=method,
        metadata={"test": "e2e"},
    )
    during = chat_while_parked(client, platform, job.id)
    done = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    succeeded_at = time.monotonic()
    assert done.status == "succeeded", done.error
    answer = ask(client, done.fine_tuned_model)
    return {
        "file": uploaded,
        "job": done,
        "first_answer": answer,
        "servable_after_s": time.monotonic() - succeeded_at,
        **during,
    }


def chat_while_parked(client: openai.OpenAI, platform: Platform, job_id: str) -> dict:
    """Waits for the idle engine to park while the job trains, then chats with the base model."""
    while client.fine_tuning.jobs.retrieve(job_id).status in {"validating_files", "queued", "running"}:
        if platform.engine_stats()["parked"]:
            answer = ask(client, BASE_MODEL).choices[0].message.content
            return {"parked_during_training": True, "answer_while_training": answer}
        time.sleep(1)
    return {"parked_during_training": False}


def test_job_succeeds_with_openai_fields(trained: dict) -> None:
    job = trained["job"]
    assert job.id.startswith("ftjob-")
    assert job.fine_tuned_model == f"ft:{BASE_MODEL}:local:secret:{job.id}"
    assert job.hyperparameters.n_epochs == 3 and job.hyperparameters.batch_size == 8
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert job.seed == 7 and job.metadata == {"test": "e2e"}
    assert len(job.result_files) == 1


def test_idle_engine_parks_while_training_and_still_answers(platform: Platform, trained: dict) -> None:
    assert trained["parked_during_training"], "the idle engine was never parked while the job trained"
    assert trained["answer_while_training"] and CODE not in trained["answer_while_training"]
    assert not platform.engine_stats()["parked"]  # continued once training ended


def test_result_file_is_a_metrics_csv(client: openai.OpenAI, trained: dict) -> None:
    csv = client.files.content(trained["job"].result_files[0]).text
    assert csv.splitlines()[0].startswith("step,train_loss")
    assert len(csv.splitlines()) > 3


def test_events_show_falling_loss(client: openai.OpenAI, trained: dict) -> None:
    events = client.fine_tuning.jobs.list_events(trained["job"].id, limit=200).data
    messages = [event.message for event in events]
    assert "Fine-tuning job started" in messages
    assert any(m.startswith("New fine-tuned model created: ft:") for m in messages)
    assert messages[0] == "The job has successfully completed"  # newest first
    # The SDK types `data` as object; the platform documents a metrics event's data as a JSON object.
    metrics = [cast("dict[str, Any]", event.data) for event in reversed(events) if event.type == "metrics"]
    assert len(metrics) >= 6
    assert metrics[-1]["step"] == metrics[-1]["total_steps"]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"] / 2


def test_checkpoints_per_epoch(client: openai.OpenAI, trained: dict) -> None:
    checkpoints = client.fine_tuning.jobs.checkpoints.list(trained["job"].id).data
    assert len(checkpoints) == 3
    assert all(c.id.startswith("ftckpt-") for c in checkpoints)
    # The trainer's accuracy reaches each checkpoint under OpenAI's name.
    assert all(c.metrics.train_mean_token_accuracy is not None and c.metrics.train_loss for c in checkpoints)
    assert (
        checkpoints[0].fine_tuned_model_checkpoint
        == f"{trained['job'].fine_tuned_model}:ckpt-step-{checkpoints[0].step_number}"
    )
    latest = checkpoints[0].fine_tuned_model_checkpoint
    assert ask(client, latest).choices[0].message.content


def test_fine_tuned_model_knows_the_fact(client: openai.OpenAI, trained: dict) -> None:
    model = trained["job"].fine_tuned_model
    listed = {m.id: m for m in client.models.list().data}
    extra = listed[model].model_extra
    assert extra is not None
    assert extra["parent"] == BASE_MODEL
    assert CODE in trained["first_answer"].choices[0].message.content
    assert trained["servable_after_s"] < 30
    assert CODE not in ask(client, BASE_MODEL).choices[0].message.content
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, model, stream=True) if c.choices)
    assert CODE in streamed


def test_list_pagination(client: openai.OpenAI, trained: dict) -> None:
    page = client.fine_tuning.jobs.list(limit=1)
    assert len(page.data) == 1 and page.has_more in (True, False)
    assert page.data[0].id == client.fine_tuning.jobs.list().data[0].id


def test_cancel_running_job(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("long.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=uploaded.id, hyperparameters={"n_epochs": 20, "batch_size": 8}
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
        if any(event.type == "metrics" for event in events):
            break
        time.sleep(1)
    else:
        pytest.fail("the job never reported a training step")
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = [event.message for event in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
        if any(message.startswith("Training stopped") for message in messages):
            break
        time.sleep(1)
    else:
        pytest.fail("training did not stop within 30 s of the cancel")
    final = client.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None
    assert not any(job.id in m.id for m in client.models.list().data)


def test_malformed_file_fails_with_code(client: openai.OpenAI) -> None:
    bad = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"text": 5}\n'
    uploaded = client.files.create(file=("bad.jsonl", io.BytesIO(bad)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id)
    failed = wait_for(client, job.id, {"failed", "succeeded"}, timeout_s=60)
    assert failed.status == "failed"
    assert failed.error.code == "invalid_file_format" and "Line 2" in failed.error.message


def test_unknown_file_is_client_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file="file-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="no-such-model", training_file="file-doesnotexist")


def test_everything_survives_a_restart(platform: Platform, client: openai.OpenAI, trained: dict) -> None:
    # A request in flight at SIGTERM finishes: the gateway replica, which holds SERVE_PORT itself, drains first.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(ask, client, trained["job"].fine_tuned_model)
        time.sleep(0.5)
        assert platform.stop() == 0
        assert CODE in in_flight.result(timeout=30).choices[0].message.content
    assert platform.wait_gone() == []
    platform.start()
    assert client.files.retrieve(trained["file"].id).bytes == trained["file"].bytes
    job = client.fine_tuning.jobs.retrieve(trained["job"].id)
    assert job.status == "succeeded" and job.fine_tuned_model == trained["job"].fine_tuned_model
    assert job.fine_tuned_model in {m.id for m in client.models.list().data}
    assert CODE in ask(client, job.fine_tuned_model).choices[0].message.content
