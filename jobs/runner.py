"""Training runs as Ray actors. The actor is threaded: `run` trains in one thread while `drain` and
`cancel` answer from others, so the scheduler streams progress into the store and stops a run at a step."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import msgspec
import ray
import structlog

from engines import cpu_binding
from engines.adapter_cache import publish_adapter
from engines.artifacts import ArtifactStore, artifact_store_from_url
from engines.core.errors import PlatformError
from engines.core.logs import configure_logging
from engines.default_model import on_this_node
from engines.parking import training_in_progress
from jobs.errors import TrainerLost
from jobs.progress import BufferedReporter, Progress
from jobs.results import StepMetrics
from jobs.trainer import TrainingResult, TrainingSpec, run_training
from jobs.training_state import SavedCheckpoint, download_state, save_state

TRAINING_NICENESS = 10
DRAIN_TIMEOUT_S = 10.0


class TrainingPlacement(msgspec.Struct, frozen=True, kw_only=True):
    """What one training actor asks of Ray, and how many may run at once."""

    cpus: float
    gpus: float
    parallel_jobs: int
    threads: int


class ArtifactLocation(msgspec.Struct, frozen=True):
    """The artifact store, as a trainer on any node opens it (ARTIFACT_STORE, and DATA_DIR for its default)."""

    url: str
    default_root: str

    def open(self) -> ArtifactStore:
        return artifact_store_from_url(self.url, default_root=Path(self.default_root))


class PublishingReporter(BufferedReporter):
    """Puts each checkpoint's adapter and each training state in the artifact store as soon as they are saved, so
    they outlive this node."""

    def __init__(self, artifacts: ArtifactStore, job_id: str) -> None:
        super().__init__()
        self.artifacts = artifacts
        self.job_id = job_id

    def publish(self, path: Path) -> str | None:
        return publish_adapter(self.artifacts, path)

    def save_state(
        self, step: int, epochs_done: int, path: str, rows: list[StepMetrics], checkpoints: list[SavedCheckpoint]
    ) -> None:
        save_state(
            self.artifacts, self.job_id, Path(path), step=step, epochs_done=epochs_done, rows=rows, checkpoints=checkpoints
        )


class TrainerActor:
    """Runs as a Ray actor (`RemoteTrainer`), threaded so `drain` and `cancel` answer while `run` trains. Its
    processes are named after this class (`ray::TrainerActor`), which is how an operator finds them."""

    def __init__(self, job_id: str, log_level: str, artifacts: ArtifactLocation) -> None:
        configure_logging(log_level)
        self.job_id = job_id
        self.artifacts = artifacts.open()
        self.reporter = PublishingReporter(self.artifacts, job_id)

    def run(self, spec: TrainingSpec) -> TrainingResult:
        structlog.contextvars.bind_contextvars(job_id=self.job_id)
        # The launcher may have confined Ray's processes to a spare core; training uses the whole node.
        cpu_binding.spread_process(cpu_binding.node_cores())
        # Below inference: a chat request should not wait behind a training step. Niceness is per thread
        # on Linux; the threads torch starts from this one inherit it.
        os.nice(TRAINING_NICENESS)
        spec = msgspec.structs.replace(spec, base_model_path=on_this_node(spec.base_model_path))
        resume_dir = None
        if spec.resume_from is not None:
            target = Path(spec.output_dir) / "resume" / f"step-{spec.resume_from.step}"
            resume_dir = str(download_state(self.artifacts, self.job_id, spec.resume_from, target))
        with training_in_progress():  # idle engines on this node stop while it trains (engines.parking)
            result = run_training(spec, self.reporter, resume_dir)
        digest = publish_adapter(self.artifacts, Path(result.adapter_path))
        return msgspec.structs.replace(result, adapter_digest=digest)

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
        actor = RemoteTrainer.options(
            num_cpus=self.placement.cpus,
            num_gpus=self.placement.gpus,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(self.placement.threads), "HF_HUB_OFFLINE": "1"}},
        ).remote(job_id, self.log_level, self.artifacts)
        return RayTrainingRun(actor, spec)
