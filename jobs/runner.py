"""The trainer as a Ray actor. It is threaded: `run` trains in one thread while `drain` and `cancel`
answer from others, so the job service can stream progress into the store and stop a run at a step."""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

import ray
import structlog

from engines import cpu_binding
from engines.core.logs import configure_logging
from engines.parking import training_in_progress
from jobs.trainer import TrainingResult, TrainingSpec, run_training

ProgressEvent = tuple[str, dict[str, Any]]
TRAINING_NICENESS = 10


class BufferedReporter:
    """Collects a run's progress until the job service drains it."""

    def __init__(self) -> None:
        self._events: deque[ProgressEvent] = deque()
        self.cancelled = threading.Event()

    def metrics(
        self,
        step: int,
        total_steps: int,
        train_loss: float,
        train_mean_token_accuracy: float | None,
        valid_loss: float | None,
    ) -> None:
        data = {
            "step": step,
            "total_steps": total_steps,
            "train_loss": train_loss,
            "train_mean_token_accuracy": train_mean_token_accuracy,
        }
        if valid_loss is not None:
            data["valid_loss"] = valid_loss
        self._events.append(("metrics", data))

    def checkpoint(self, step: int, epoch: int, path: str, metrics: dict[str, Any]) -> None:
        self._events.append(("checkpoint", {"step": step, "epoch": epoch, "path": path, "metrics": metrics}))

    def message(self, level: str, text: str) -> None:
        self._events.append(("message", {"level": level, "text": text}))

    def should_cancel(self) -> bool:
        return self.cancelled.is_set()

    def drain(self) -> list[ProgressEvent]:
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events


@ray.remote(max_concurrency=4)
class TrainerActor:
    def __init__(self, job_id: str, log_level: str) -> None:
        configure_logging(log_level)
        self.job_id = job_id
        self.reporter = BufferedReporter()

    def run(self, spec: TrainingSpec) -> TrainingResult:
        structlog.contextvars.bind_contextvars(job_id=self.job_id)
        # The launcher may have confined Ray's processes to a spare core; training uses the whole node.
        cpu_binding.spread_process(cpu_binding.node_cores())
        # Below inference: a chat request should not wait behind a training step. Niceness is per thread
        # on Linux; the threads torch starts from this one inherit it.
        os.nice(TRAINING_NICENESS)
        with training_in_progress():  # idle engines on this node stop while it trains (engines.parking)
            return run_training(spec, self.reporter)

    def drain(self) -> list[ProgressEvent]:
        return self.reporter.drain()

    def cancel(self) -> None:
        self.reporter.cancelled.set()
