"""Reading a fine-tuning job's progress through the openai SDK, for the end-to-end and cluster tests."""

from __future__ import annotations

import time
from typing import cast

import openai

TERMINAL = ("succeeded", "failed", "cancelled")


def wait_done(client: openai.OpenAI, job_id: str, timeout_s: float = 900) -> str:
    """The job's final status, once it has one."""
    deadline = time.monotonic() + timeout_s
    while (status := client.fine_tuning.jobs.retrieve(job_id).status) not in TERMINAL:
        assert time.monotonic() < deadline, f"job {job_id} still {status} after {timeout_s}s"
        time.sleep(1)
    return status


def metric_rows(client: openai.OpenAI, job_id: str) -> list[dict]:
    """The `data` of the job's metrics events, newest first."""
    events = client.fine_tuning.jobs.list_events(job_id, limit=200).data
    return [cast(dict, event.data) for event in events if event.type == "metrics" and event.data]


def metric_steps(client: openai.OpenAI, job_id: str) -> list[int]:
    """The steps of the job's metrics events, newest first."""
    return [int(row["step"]) for row in metric_rows(client, job_id)]


def messages(client: openai.OpenAI, job_id: str) -> list[str]:
    """The messages of the job's events, oldest first."""
    return [event.message for event in reversed(client.fine_tuning.jobs.list_events(job_id, limit=200).data)]
