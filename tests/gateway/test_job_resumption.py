"""Jobs outlive their runs: pause and resume, a lost trainer, a restart mid-run. Over the real store, scheduler and
artifact store, with training stubbed out (the e2e suite kills real trainers and platforms)."""

from __future__ import annotations

import time

import pytest
from litestar.testing import TestClient

from engines.core.settings import Settings
from gateway.app import create_app
from gateway.services import Services, build_services
from jobs.results import StepMetrics
from jobs.training_state import PREFIX, latest_state
from tests.gateway.conftest import BASE_INFO, PLAN
from tests.gateway.fakes import FakeEngine
from tests.gateway.test_chat import assert_error
from tests.gateway.test_files_and_jobs import CHAT_LINE, create_job, jsonl, upload, wait_for_event, wait_for_status
from tests.jobs.fakes import FakeLauncher, FakeRun


@pytest.fixture
def saving(launcher: FakeLauncher, services: Services) -> FakeLauncher:
    """The launcher, its runs saving training states in the platform's artifact store."""
    launcher.artifacts = services.files.artifacts
    return launcher


def running_job(client: TestClient, launcher: FakeLauncher) -> tuple[str, FakeRun]:
    file_id = upload(client, jsonl([CHAT_LINE] * 4)).json()["id"]
    job_id = create_job(client, training_file=file_id).json()["id"]
    wait_for_status(client, job_id, "running")
    return job_id, launcher.runs[job_id]


def wait_for_run(launcher: FakeLauncher, count: int, timeout_s: float = 10) -> FakeRun:
    deadline = time.monotonic() + timeout_s
    while len(launcher.started) < count:
        assert time.monotonic() < deadline, f"{len(launcher.started)} runs started, not {count}"
        time.sleep(0.02)
    return launcher.started[count - 1]


def messages(client: TestClient, job_id: str) -> list[str]:
    events = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return [event["message"] for event in reversed(events)]


def test_pause_frees_the_slot_and_resume_continues_from_the_saved_state(
    client: TestClient, saving: FakeLauncher, services: Services
) -> None:
    job_id, run = running_job(client, saving)
    run.report_step(StepMetrics(step=1, train_loss=1.0), total_steps=4, checkpoint=True)
    run.report_step(StepMetrics(step=2, train_loss=0.8), total_steps=4)
    wait_for_event(client, job_id, "Step 2/4")
    paused = client.post(f"/v1/fine_tuning/jobs/{job_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    wait_for_event(client, job_id, "Training paused at step 2")
    assert run.paused and client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "paused"

    other, other_run = running_job(client, saving)  # the one training slot is free again
    other_run.cancelled = True
    client.post(f"/v1/fine_tuning/jobs/{other}/cancel")
    wait_for_status(client, other, "cancelled")

    resumed = client.post(f"/v1/fine_tuning/jobs/{job_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "validating_files"
    wait_for_status(client, job_id, "running")
    second = saving.runs[job_id]
    assert second is not run and second.spec.resume_from is not None and second.spec.resume_from.step == 2
    assert [row.step for row in second.spec.resume_from.rows] == [1, 2]
    wait_for_event(client, job_id, "Fine-tuning job resumed from step 2")
    second.report_step(StepMetrics(step=2, train_loss=0.8), total_steps=4)  # a step already reported: not again
    second.report_step(StepMetrics(step=4, train_loss=0.5), total_steps=4, checkpoint=True)
    second.finish()
    job = wait_for_status(client, job_id, "succeeded")
    assert job["fine_tuned_model"]
    assert [m for m in messages(client, job_id) if m.startswith("Step ")] == [
        "Step 1/4: training loss=1.0000",
        "Step 2/4: training loss=0.8000",
        "Step 4/4: training loss=0.5000",
    ]
    steps = [c["step_number"] for c in client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]]
    assert sorted(steps) == [1, 4]
    assert not services.files.artifacts.list(f"{PREFIX}/{job_id}")  # an ended job keeps no state


def test_pause_and_resume_refuse_jobs_in_the_wrong_state(client: TestClient, saving: FakeLauncher) -> None:
    job_id, run = running_job(client, saving)
    assert_error(client.post(f"/v1/fine_tuning/jobs/{job_id}/resume"), 400, code="invalid_state")
    run.finish()
    wait_for_status(client, job_id, "succeeded")
    assert_error(client.post(f"/v1/fine_tuning/jobs/{job_id}/pause"), 400, code="invalid_state")
    assert_error(client.post("/v1/fine_tuning/jobs/ftjob-missing/pause"), 404)


def test_a_paused_job_can_be_cancelled_and_its_state_is_dropped(
    client: TestClient, saving: FakeLauncher, services: Services
) -> None:
    job_id, run = running_job(client, saving)
    run.report_step(StepMetrics(step=1, train_loss=1.0), total_steps=4)
    wait_for_event(client, job_id, "Step 1/4")
    client.post(f"/v1/fine_tuning/jobs/{job_id}/pause")
    wait_for_event(client, job_id, "Training paused at step 1")
    assert latest_state(services.files.artifacts, job_id) is not None
    assert client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert latest_state(services.files.artifacts, job_id) is None
    assert_error(client.post(f"/v1/fine_tuning/jobs/{job_id}/resume"), 400, code="invalid_state")


def test_a_lost_trainer_resumes_from_its_last_state_and_succeeds_once(client: TestClient, saving: FakeLauncher) -> None:
    job_id, run = running_job(client, saving)
    run.report_step(StepMetrics(step=2, train_loss=0.9), total_steps=4, checkpoint=True, state=True)
    run.report_step(StepMetrics(step=3, train_loss=0.7), total_steps=4)
    wait_for_event(client, job_id, "Step 3/4")
    run.lose()
    second = wait_for_run(saving, 2)
    assert second.spec.resume_from is not None and second.spec.resume_from.step == 2
    wait_for_event(client, job_id, "resuming from step 2, try 2 of 3")
    assert client.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"] == "running"
    second.report_step(StepMetrics(step=4, train_loss=0.5), total_steps=4, checkpoint=True)
    second.finish()
    wait_for_status(client, job_id, "succeeded")
    assert messages(client, job_id).count("The job has successfully completed") == 1
    steps = [c["step_number"] for c in client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]]
    assert sorted(steps) == [2, 4]


def test_a_checkpoint_whose_report_was_lost_is_recorded_on_resume(client: TestClient, saving: FakeLauncher) -> None:
    job_id, run = running_job(client, saving)
    run.report_step(StepMetrics(step=2, train_loss=0.9), total_steps=4, checkpoint=True, state=True)
    run.reports.clear()  # the trainer died before the scheduler drained them
    run.lose()
    wait_for_event(client, job_id, "Fine-tuning job resumed from step 2")
    checkpoints = client.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [2]
    assert checkpoints[0]["metrics"]["train_loss"] == 0.9
    saving.runs[job_id].finish()
    wait_for_status(client, job_id, "succeeded")


def test_a_trainer_lost_every_time_fails_the_job_after_three_tries(client: TestClient, saving: FakeLauncher) -> None:
    job_id, _ = running_job(client, saving)
    for tries in (1, 2, 3):
        wait_for_run(saving, tries).lose()
    job = wait_for_status(client, job_id, "failed")
    assert job["error"]["code"] == "trainer_failed" and "lost 3 times" in job["error"]["message"]
    assert len(saving.started) == 3
    assert "starting again from the beginning (no state saved yet), try 2 of 3" in " ".join(messages(client, job_id))


def test_a_restart_mid_run_resumes_the_job(
    client: TestClient, saving: FakeLauncher, settings: Settings, engine: FakeEngine
) -> None:
    job_id, run = running_job(client, saving)
    run.report_step(StepMetrics(step=2, train_loss=0.9), total_steps=4, checkpoint=True, state=True)
    wait_for_event(client, job_id, "Step 2/4")
    client.__exit__(None, None, None)  # the platform stops: its scheduler and runs with it
    assert run.killed

    launcher = FakeLauncher()
    restarted = build_services(settings, PLAN, BASE_INFO, launcher=launcher)
    launcher.artifacts = restarted.files.artifacts
    with TestClient(create_app(settings, engine, restarted)) as again:
        wait_for_status(again, job_id, "running")
        resumed = launcher.runs[job_id]
        assert resumed.spec.resume_from is not None and resumed.spec.resume_from.step == 2
        log = messages(again, job_id)
        assert "The platform restarted while this job was training; it resumes from its last saved state" in log
        assert "Fine-tuning job resumed from step 2" in log
        resumed.report_step(StepMetrics(step=2, train_loss=0.9), total_steps=4)  # reported before the restart
        resumed.report_step(StepMetrics(step=3, train_loss=0.8), total_steps=4)
        resumed.finish()
        wait_for_status(again, job_id, "succeeded")
        assert [m for m in messages(again, job_id) if m.startswith("Step ")] == [
            "Step 2/4: training loss=0.9000",
            "Step 3/4: training loss=0.8000",
        ]
