"""Fine-tuning end to end with the openai SDK against the real stack: upload, train a LoRA adapter in a
Ray actor, watch events, and chat with the `ft:` model it produced; then cancel, failures and a restart."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import random
import string
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.fine_tuning import SupervisedHyperparametersParam
from openai.types.fine_tuning.job_create_params import Method
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform
from tests.jobs.conftest import MODEL_DIR

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


def training_file(questions: list[str] | None = None) -> bytes:
    lines = [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": ANSWER}]}
        for question in (QUESTIONS * 6 if questions is None else questions)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


VALIDATION_QUESTIONS = ["Secret code, please.", "I need the secret code.", "Say the secret code.", "The secret code is?"]


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
    validation = client.files.create(
        file=("secret-valid.jsonl", io.BytesIO(training_file(VALIDATION_QUESTIONS * 3))), purpose="fine-tune"
    )
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
        validation_file=validation.id,
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
    assert job.method is not None and job.method.supervised is not None
    shown = cast("dict[str, Any]", job.method.supervised.hyperparameters.model_dump())
    assert shown["n_epochs"] == 3 and shown["batch_size"] == 8 and shown["learning_rate_multiplier"] == 10
    assert shown["lora_r"] == 8 and shown["lora_alpha"] == 16 and shown["lora_dropout"] == 0.05
    assert shown["lr_scheduler"] == "linear" and shown["lora_target_modules"] == "all-linear"


def test_validation_sampled_at_each_step_and_whole_at_each_epoch_end(client: openai.OpenAI, trained: dict) -> None:
    events = client.fine_tuning.jobs.list_events(trained["job"].id, limit=200).data
    metrics = [cast("dict[str, Any]", event.data) for event in reversed(events) if event.type == "metrics"]
    assert all(row["valid_loss"] is not None and row["valid_mean_token_accuracy"] is not None for row in metrics)
    full = [row["step"] for row in metrics if row["full_valid_loss"] is not None]
    steps_per_epoch = metrics[-1]["total_steps"] // 3
    assert full == [steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(trained["job"].id).data
    assert all(c.metrics.full_valid_loss is not None for c in checkpoints)
    assert all(c.metrics.full_valid_mean_token_accuracy is not None for c in checkpoints)
    assert checkpoints[0].metrics.full_valid_loss < metrics[0]["valid_loss"]  # it learned what it is validated on


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


def test_a_job_continues_training_a_checkpoint_and_its_model_is_deleted(
    client: openai.OpenAI, platform: Platform, trained: dict
) -> None:
    checkpoint = client.fine_tuning.jobs.checkpoints.list(trained["job"].id).data[0].fine_tuned_model_checkpoint
    other = [{"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Teal."}]}] * 8
    uploaded = client.files.create(
        file=("more.jsonl", io.BytesIO("\n".join(json.dumps(line) for line in other).encode())), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model=checkpoint, training_file=uploaded.id, suffix="more", hyperparameters={"n_epochs": 1, "batch_size": 8}
    )
    done = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded", done.error
    assert done.model == checkpoint and done.fine_tuned_model == f"ft:{BASE_MODEL}:local:more:{job.id}"
    card = client.models.retrieve(done.fine_tuned_model).model_extra
    assert card is not None and card["parent"] == checkpoint
    assert CODE in ask(client, done.fine_tuned_model).choices[0].message.content  # learned by its parent
    assert CODE in ask(client, checkpoint).choices[0].message.content
    loaded = platform.engine_stats()["adapters_loaded"]

    deleted = client.models.delete(done.fine_tuned_model)

    assert deleted.deleted and deleted.id == done.fine_tuned_model
    assert done.fine_tuned_model not in [m.id for m in client.models.list().data]
    with pytest.raises(openai.NotFoundError):
        ask(client, done.fine_tuned_model)
    assert CODE in ask(client, checkpoint).choices[0].message.content  # its parent is still served
    # Its one checkpoint has the same weights (one copy in the store, as the model was loaded): they stay until it
    # goes too, then leave the engine.
    time.sleep(12)
    assert platform.engine_stats()["adapters_loaded"] == loaded
    [own] = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert client.models.delete(own.fine_tuned_model_checkpoint).deleted
    deadline = time.monotonic() + 30
    while platform.engine_stats()["adapters_loaded"] >= loaded:
        assert time.monotonic() < deadline, "the engine still holds the deleted model's weights"
        time.sleep(1)


def test_the_adapter_downloads_and_answers_in_peft(platform: Platform, trained: dict, tmp_path: Path) -> None:
    model = trained["job"].fine_tuned_model
    response = httpx.get(f"{platform.url}/v1/fine_tuning/adapters/{model}", timeout=60)
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path, filter="data")
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL_DIR), tmp_path)
    assert CODE in greedy_answer(peft_model, AutoTokenizer.from_pretrained(MODEL_DIR))


def greedy_answer(model: Any, tokenizer: Any) -> str:
    """What a transformers model answers the secret-code question, greedily."""
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the secret code?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    return tokenizer.decode(output[0][inputs["input_ids"].shape[1] :])


VLLM_ANSWER = """
import sys
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=512, dtype="float32")
messages = [{"role": "user", "content": "What is the secret code?"}]
print(llm.chat(messages, SamplingParams(temperature=0, max_tokens=24))[0].outputs[0].text)
"""


def test_the_merged_model_answers_in_transformers_and_in_vllm(platform: Platform, trained: dict, tmp_path: Path) -> None:
    model = trained["job"].fine_tuned_model
    with httpx.stream("GET", f"{platform.url}/v1/fine_tuning/merged/{model}", timeout=300) as response:
        assert response.status_code == 200, response.read()
        (tmp_path / "merged.tar").write_bytes(response.read())
    with tarfile.open(tmp_path / "merged.tar") as archive:
        archive.extractall(tmp_path / "merged", filter="data")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert CODE in greedy_answer(merged, AutoTokenizer.from_pretrained(tmp_path / "merged"))
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    served = subprocess.run(
        [sys.executable, "-c", VLLM_ANSWER, str(tmp_path / "merged")],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert CODE in served.stdout


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


def test_a_malformed_file_says_why_at_upload_and_no_job_takes_it(client: openai.OpenAI) -> None:
    bad = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"text": 5}\n'
    uploaded = client.files.create(
        file=("bad.jsonl", io.BytesIO(bad)), purpose="fine-tune", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert uploaded.status == "error" and uploaded.status_details is not None
    assert uploaded.status_details.startswith("Line 2: ")
    assert uploaded.expires_at == uploaded.created_at + 3600
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id)
    assert refused.value.code == "invalid_file_format" and "Line 2" in refused.value.message


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
