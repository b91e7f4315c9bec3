"""Training runs as Ray actors. The actor is threaded: `run` trains in one thread (or, for a data-parallel job,
coordinates the workers that do) while `drain` and `cancel` answer from others, so the scheduler streams progress
into the store and stops a run at a step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import ray
import structlog

from engines.core.errors import PlatformError
from engines.core.logs import configure_logging
from engines.resources import ResourcePlan
from jobs.errors import TrainerLost
from jobs.progress import Progress
from jobs.training_host import ArtifactLocation, PublishingReporter, train_on_this_host
from jobs.training_spec import TrainingResult, TrainingSpec

DRAIN_TIMEOUT_S = 10.0


class TrainingPlacement(msgspec.Struct, frozen=True, kw_only=True):
    """What one training actor asks of Ray."""

    cpus: float
    gpus: float
    threads: int


class TrainerActor:
    """Runs as a Ray actor (`RemoteTrainer`), threaded so `drain` and `cancel` answer while `run` trains. Its
    processes are named after this class (`ray::TrainerActor`), which is how an operator finds them."""

    def __init__(self, job_id: str, log_level: str, location: ArtifactLocation, placement: TrainingPlacement) -> None:
        configure_logging(log_level)
        self.job_id = job_id
        self.log_level = log_level
        self.location = location
        self.placement = placement
        self.artifacts = location.open()
        self.reporter = PublishingReporter(self.artifacts, job_id)

    def run(self, spec: TrainingSpec) -> TrainingResult:
        structlog.contextvars.bind_contextvars(job_id=self.job_id)
        if spec.hyperparameters.n_workers > 1:
            # Ray Train (and with it torch) only in a trainer's process, never in the control plane's.
            from jobs.data_parallel import WorkerResources, train_data_parallel

            return train_data_parallel(
                spec,
                self.job_id,
                WorkerResources(self.placement.cpus, self.placement.gpus),
                self.location,
                coordinator=ray.get_runtime_context().current_actor,
                log_level=self.log_level,
                storage_path=str(Path(spec.output_dir) / "ray-train"),
            )
        return train_on_this_host(spec, self.reporter, self.artifacts, self.job_id)

    def relay(self, reports: list[Progress]) -> None:
        """Progress of a data-parallel run's rank 0, for the scheduler's next drain."""
        self.reporter.extend(reports)

    def stop_requests(self) -> tuple[bool, bool]:
        """Whether the run was asked to cancel, and to pause: read by a data-parallel run's rank 0 at each step."""
        return self.reporter.should_cancel(), self.reporter.should_pause()

    def drain(self) -> list[Progress]:
        return self.reporter.drain()

    def cancel(self) -> None:
        self.reporter.cancelled.set()

    def pause(self) -> None:
        self.reporter.paused.set()


RemoteTrainer = ray.remote(max_concurrency=4)(TrainerActor)


class RayTrainingRun:
    def __init__(self, actor: ray.actor.ActorHandle, spec: TrainingSpec) -> None:
        self._actor = actor
        self._result = actor.run.remote(spec)

    async def result(self) -> TrainingResult:
        try:
            return await self._result
        except ray.exceptions.RayTaskError as exc:  # the run raised: its own error
            raise exc.cause if isinstance(exc.cause, Exception) else exc from None
        except ray.exceptions.RayError as exc:  # the actor, its process or its node is gone
            raise TrainerLost(f"The trainer was lost ({type(exc).__name__})", code="trainer_lost") from exc

    async def drain(self) -> list[Progress]:
        try:
            return await asyncio.wait_for(self._actor.drain.remote(), timeout=DRAIN_TIMEOUT_S)
        except Exception:
            return []  # a dead actor is reported through the run's own result

    def cancel(self) -> None:
        self._actor.cancel.remote()

    def pause(self) -> None:
        self._actor.pause.remote()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self._actor)


class RayTrainerLauncher:
    def __init__(self, placement: TrainingPlacement, log_level: str, artifacts: ArtifactLocation) -> None:
        self.placement = placement
        self.log_level = log_level
        self.artifacts = artifacts

    def start(self, job_id: str, spec: TrainingSpec) -> RayTrainingRun:
        if not ray.is_initialized():  # never start a stray local cluster from a library call
            raise PlatformError("Training needs the platform's Ray cluster, which is not running.", code="no_cluster")
        # A data-parallel run's workers ask for the resources; the actor that coordinates them needs none.
        alone = spec.hyperparameters.n_workers == 1
        actor = RemoteTrainer.options(
            num_cpus=self.placement.cpus if alone else 0,
            num_gpus=self.placement.gpus if alone else 0,
            # A trainer uses every core of its host: two on one host while another host idles would halve both.
            scheduling_strategy="SPREAD",
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(self.placement.threads), "HF_HUB_OFFLINE": "1"}},
        ).remote(job_id, self.log_level, self.artifacts, self.placement)
        return RayTrainingRun(actor, spec)


def cluster_capacity(plan: ResourcePlan) -> Callable[[], int]:
    """How many jobs fit the Ray cluster as it is now, under `plan`'s split of it (without Ray: the plan's figure)."""

    def capacity() -> int:
        return plan.parallel_jobs_on(ray.cluster_resources()) if ray.is_initialized() else plan.max_parallel_jobs

    return capacity
