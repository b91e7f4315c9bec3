"""The platform's state outlives any process: one node with two gateway replicas, the metadata in a real
PostgreSQL server and every file, checkpoint and adapter in an S3 store (moto's server on loopback), with
nothing under DATA_DIR. Jobs created through either replica share one control plane; killing a gateway
replica mid-job leaves the job alone; killing the control plane, stopping the platform or pausing the job
costs the job nothing: it resumes from its last saved state and succeeds once."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Iterator

import boto3
import httpx
import openai
import pytest
from openai.types.fine_tuning.job_create_params import Hyperparameters
from prometheus_client.parser import text_string_to_metric_families

from engines.core.metrics import REPORT_INTERVAL_S
from tests.e2e.conftest import BASE_MODEL
from tests.e2e.jobs import messages, metric_steps, wait_done
from tests.e2e.platform import Platform
from tests.e2e.test_fine_tuning import ANSWER, CODE, QUESTIONS, ask, training_file
from tests.servers import new_database, s3_server

pytestmark = pytest.mark.e2e

BUCKET, PREFIX = "platform-artifacts", "e2e"
SMALL: Hyperparameters = {"n_epochs": 1, "batch_size": 8}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with s3_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        yield endpoint


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory, postgres: str, s3: str) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("scale-out")
    platform = Platform(
        root / "data",
        root / "platform.log",
        GATEWAY_REPLICAS="2",
        DATABASE_URL=new_database(postgres, "scale_out"),
        ARTIFACT_STORE=f"s3://{BUCKET}/{PREFIX}",
        AWS_ENDPOINT_URL=s3,
        **CREDENTIALS,
    )
    platform.start()
    yield platform
    if platform.process is not None and platform.process.poll() is None:
        assert platform.stop() == 0
        assert platform.wait_gone() == []


def sdk(platform: Platform) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{platform.url}/v1", api_key="unused", max_retries=2, timeout=300)


def stored_keys(s3: str) -> list[str]:
    pages = boto3.client("s3", endpoint_url=s3, **_boto_credentials()).get_paginator("list_objects_v2")
    return [item["Key"] for page in pages.paginate(Bucket=BUCKET, Prefix=PREFIX) for item in page.get("Contents", [])]


def test_the_fine_tune_loop_keeps_nothing_on_the_node(scaled: Platform, s3: str) -> None:
    client = sdk(scaled)
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    hyperparameters = {"n_epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "lora_r": 8, "lora_alpha": 16}
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=uploaded.id, extra_body={"hyperparameters": hyperparameters}
    )
    assert wait_done(client, job.id) == "succeeded", client.fine_tuning.jobs.retrieve(job.id).error
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert model is not None
    answer = ask(client, model).choices[0].message.content
    assert answer is not None and CODE in answer, (answer, ANSWER)
    keys = stored_keys(s3)
    assert f"{PREFIX}/files/{uploaded.id}" in keys
    manifests = [key for key in keys if key.startswith(f"{PREFIX}/adapters/") and key.endswith("/manifest.json")]
    assert len(manifests) >= 2  # the final adapter and each epoch's checkpoint
    assert not (scaled.data_dir / "files").exists()  # contents live in the store, not on this node


def scrape(platform: Platform) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One scrape over a new connection, which either gateway replica may take."""
    text = httpx.get(f"{platform.url}/metrics", timeout=30).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(series: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls)


def test_metrics_add_up_across_both_gateway_replicas(scaled: Platform) -> None:
    time.sleep(REPORT_INTERVAL_S + 1)  # the earlier tests' requests reported by both replicas
    before = scrape(scaled)
    ok = {"endpoint": "/v1/chat/completions", "model": BASE_MODEL, "adapter": "", "status": "200"}
    for _ in range(20):
        # A new connection each, so the kernel hands them to both replicas; no retry, which would count twice.
        with openai.OpenAI(base_url=f"{scaled.url}/v1", api_key="unused", max_retries=0, timeout=300) as fresh:
            fresh.chat.completions.create(model=BASE_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    deadline = time.monotonic() + 30
    while True:  # the other replica's counts arrive with its next report, within seconds
        after = scrape(scaled)
        chats = total(after, "llm_requests_total", **ok) - total(before, "llm_requests_total", **ok)
        if chats == 20 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert chats == 20
    served_by = {
        dict(labels)["replica"]: value - before.get((name, labels), 0.0)
        for (name, labels), value in after.items()
        if name == "llm_gateway_requests_total"
    }
    assert len([replica for replica, count in served_by.items() if count > 0]) == 2, served_by

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert 20 <= grew("llm_completion_tokens_total", model=BASE_MODEL) <= 60
    assert grew("llm_time_to_first_token_seconds_count", model=BASE_MODEL) == 20
    engines = [dict(labels) for name, labels in after if name == "llm_engine_kv_cache_usage_ratio"]
    assert len(engines) == 1 and engines[0]["replica"] and engines[0]["node"], engines
    assert total(after, "llm_fine_tuning_jobs", status="succeeded") >= 1  # the job of the test before
    assert total(after, "llm_fine_tuning_trained_tokens_total") > 0


def test_jobs_from_both_replicas_share_one_scheduler(scaled: Platform) -> None:
    """Three jobs created over new connections, which the two replicas share: the 2-core plan runs one at a time.
    One step each: what is watched is the queue, not the training."""
    client = sdk(scaled)
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file(QUESTIONS))), purpose="fine-tune")
    jobs = []
    for _ in range(3):
        fresh = sdk(scaled)  # a new connection, so the kernel may hand it to either replica
        jobs.append(fresh.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, hyperparameters=SMALL).id)
        fresh.close()
    most_running = 0
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        statuses = [client.fine_tuning.jobs.retrieve(job_id).status for job_id in jobs]
        most_running = max(most_running, statuses.count("running"))
        if all(status in ("succeeded", "failed", "cancelled") for status in statuses):
            break
        time.sleep(0.5)
    assert statuses == ["succeeded"] * 3
    assert most_running == 1


def test_a_killed_gateway_replica_leaves_the_job_alone(scaled: Platform) -> None:
    client = sdk(scaled)
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, hyperparameters=SMALL)
    deadline = time.monotonic() + 300
    while client.fine_tuning.jobs.retrieve(job.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    gateways = scaled.processes("ServeReplica:llm-platform:gateway")
    assert gateways, "no gateway replica process found"
    gateways[0].send_signal(signal.SIGKILL)
    assert wait_done(client, job.id) == "succeeded"
    events = [event.message for event in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert events.count("The job has successfully completed") == 1


TWO_EPOCHS: Hyperparameters = {"n_epochs": 2, "batch_size": 8}  # a state saved at each epoch's end


SHORT = QUESTIONS * 3
"""Three steps an epoch with TWO_EPOCHS: a job lost in its second epoch resumes from the first's saved state; two
steps left once step 4 is seen give a stopping platform time to stop before the job could end."""


def start_job_past(client: openai.OpenAI, step: int, questions: list[str] | None = None) -> str:
    uploaded = client.files.create(file=("train.jsonl", io.BytesIO(training_file(questions))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id, hyperparameters=TWO_EPOCHS)
    deadline = time.monotonic() + 600
    while max(metric_steps(client, job.id), default=0) < step:
        assert time.monotonic() < deadline, f"job {job.id} did not reach step {step}"
        time.sleep(0.5)
    return job.id


def trainers_settle_at(platform: Platform, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(platform.processes("TrainerActor")) != count:
        assert time.monotonic() < deadline, f"{len(platform.processes('TrainerActor'))} trainer processes, not {count}"
        time.sleep(0.5)


def test_a_killed_control_plane_is_replaced_and_the_job_resumes_once(scaled: Platform) -> None:
    client = sdk(scaled)
    job_id = start_job_past(client, 4, SHORT)  # the state of step 3, the first epoch's end, is in the store
    planes = scaled.processes("ServeReplica:llm-platform:control_plane")
    assert len(planes) == 1, planes
    planes[0].send_signal(signal.SIGKILL)
    assert wait_done(client, job_id) == "succeeded", client.fine_tuning.jobs.retrieve(job_id).error
    log = messages(client, job_id)
    assert any(message.startswith("The platform restarted while this job was training") for message in log), log
    assert "Fine-tuning job resumed from step 3" in log
    assert log.count("The job has successfully completed") == 1
    assert sorted(metric_steps(client, job_id)) == list(range(1, 7))
    models = [model.id for model in client.models.list().data]
    fine_tuned = client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert fine_tuned is not None and models.count(fine_tuned) == 1
    trainers_settle_at(scaled, 0)  # the lost run's trainer went with its owner: no stray run


def test_pause_frees_the_trainer_and_resume_continues_from_the_paused_step(scaled: Platform, s3: str) -> None:
    client = sdk(scaled)
    job_id = start_job_past(client, 2)
    assert client.fine_tuning.jobs.pause(job_id).status == "paused"
    deadline = time.monotonic() + 300
    while not any(message.startswith("Training paused at step") for message in messages(client, job_id)):
        assert time.monotonic() < deadline, messages(client, job_id)
        time.sleep(0.5)
    paused = next(m for m in messages(client, job_id) if m.startswith("Training paused at step"))
    paused_at = paused.removeprefix("Training paused at step ").split(";")[0]
    assert client.fine_tuning.jobs.retrieve(job_id).status == "paused"
    trainers_settle_at(scaled, 0)
    assert any(key.startswith(f"{PREFIX}/training-state/{job_id}/step-{paused_at}/") for key in stored_keys(s3))
    assert client.fine_tuning.jobs.resume(job_id).status in ("validating_files", "queued", "running")
    assert wait_done(client, job_id) == "succeeded"
    log = messages(client, job_id)
    assert f"Fine-tuning job resumed from step {paused_at}" in log
    assert sorted(metric_steps(client, job_id)) == list(range(1, 13))
    # The states are removed just after the succeeded job is committed, so they may outlive its first read.
    deadline = time.monotonic() + 30
    while states := [key for key in stored_keys(s3) if key.startswith(f"{PREFIX}/training-state/{job_id}/")]:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)


def test_sigterm_mid_job_then_start_again_resumes_from_the_store(scaled: Platform) -> None:
    """The platform stopped and started again: the job resumes from its state in S3 and succeeds once."""
    client = sdk(scaled)
    job_id = start_job_past(client, 4, SHORT)
    assert scaled.stop() == 0
    assert scaled.wait_gone() == []
    scaled.start()
    client = sdk(scaled)
    assert wait_done(client, job_id) == "succeeded", client.fine_tuning.jobs.retrieve(job_id).error
    log = messages(client, job_id)
    assert any(message.startswith("The platform restarted while this job was training") for message in log), log
    assert "Fine-tuning job resumed from step 3" in log and log.count("The job has successfully completed") == 1
    assert sorted(metric_steps(client, job_id)) == list(range(1, 7))
