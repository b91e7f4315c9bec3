"""One job trained data-parallel by several Ray Train workers (`TorchTrainer`: gloo on CPU, NCCL on GPU), each on
its own share of every batch, spread over the hosts that have room. The job's TrainerActor coordinates: it starts
the run, relays rank 0's progress to the scheduler, and hands rank 0 a cancel or a pause, which rank 0 passes on to
the other ranks so all stop at the same step. Rank 0 publishes checkpoints, training states and the adapter as a
lone trainer does; every rank downloads a state to resume from onto its own host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import ray
import structlog
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from engines.artifacts import ArtifactStore
from engines.core.logs import configure_logging
from jobs.errors import TrainerLost, TrainingCancelled, TrainingPaused
from jobs.progress import BufferedReporter
from jobs.training_host import ArtifactLocation, PublishingReporter, train_on_this_host
from jobs.training_spec import Reporter, TrainingResult, TrainingSpec

log = structlog.get_logger("jobs.data_parallel")


class WorkerResources(msgspec.Struct, frozen=True):
    cpus: float
    gpus: float


class RelayingReporter(PublishingReporter):
    """Rank 0's reporter: publishes as a lone trainer's does, hands each report to the coordinating actor, and asks
    it whether the run was cancelled or paused."""

    def __init__(self, artifacts: ArtifactStore, job_id: str, coordinator: ray.actor.ActorHandle) -> None:
        super().__init__(artifacts, job_id)
        self.coordinator = coordinator

    def _relay(self) -> None:
        ray.get(self.coordinator.relay.remote(self.drain()))

    def metrics(self, *args: Any) -> None:
        super().metrics(*args)
        self._relay()

    def checkpoint(self, *args: Any) -> str | None:
        digest = super().checkpoint(*args)
        self._relay()
        return digest

    def message(self, level: str, text: str) -> None:
        super().message(level, text)
        self._relay()

    def should_cancel(self) -> bool:
        return ray.get(self.coordinator.stop_requests.remote())[0]

    def should_pause(self) -> bool:
        return ray.get(self.coordinator.stop_requests.remote())[1]


def _train_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One rank. Returns rank 0's outcome, which Ray Train hands back to `train_data_parallel`."""
    spec: TrainingSpec = config["spec"]
    job_id: str = config["job_id"]
    location: ArtifactLocation = config["location"]
    configure_logging(config["log_level"])
    rank = ray.train.get_context().get_world_rank()
    structlog.contextvars.bind_contextvars(job_id=job_id, rank=rank)
    artifacts = location.open()
    reporter: Reporter = RelayingReporter(artifacts, job_id, config["coordinator"]) if rank == 0 else BufferedReporter()
    if rank > 0:  # ranks on one host must not share the folder HF's Trainer writes per-rank files to
        spec = msgspec.structs.replace(spec, output_dir=str(Path(spec.output_dir) / f"rank-{rank}"))
    try:
        result = train_on_this_host(spec, reporter, artifacts, job_id, publish=rank == 0)
    except (TrainingCancelled, TrainingPaused) as stopped:
        return {"stopped": type(stopped).__name__, "message": str(stopped)}
    return {"result": msgspec.json.encode(result).decode()}


def train_data_parallel(
    spec: TrainingSpec,
    job_id: str,
    resources: WorkerResources,
    location: ArtifactLocation,
    *,
    coordinator: ray.actor.ActorHandle,
    log_level: str,
    storage_path: str,
) -> TrainingResult:
    """Runs `spec` on `spec.hyperparameters.n_workers` workers and returns rank 0's result. Raises TrainingCancelled
    or TrainingPaused as a lone trainer does, TrainerLost when a worker's process or host is lost, and a failure of
    the training code as it was raised."""
    workers = spec.hyperparameters.n_workers
    per_worker = {"CPU": resources.cpus, **({"GPU": resources.gpus} if resources.gpus else {})}
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={
            "spec": spec,
            "job_id": job_id,
            "location": location,
            "coordinator": coordinator,
            "log_level": log_level,
        },
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=resources.gpus > 0,
            resources_per_worker=per_worker,
            placement_strategy="SPREAD",
        ),
        torch_config=TorchConfig(backend="nccl" if resources.gpus > 0 else "gloo"),
        # A lost worker loses the run: the scheduler resumes the job from its latest state, as for a lone trainer.
        run_config=RunConfig(name=job_id, storage_path=storage_path, failure_config=FailureConfig(max_failures=0)),
    )
    log.info("data_parallel_training_started", workers=workers, **per_worker)
    try:
        outcome = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise _cause(exc) from exc
    returned: dict[str, Any] = outcome.return_value or {}
    if returned.get("stopped") == TrainingCancelled.__name__:
        raise TrainingCancelled(returned["message"])
    if returned.get("stopped") == TrainingPaused.__name__:
        raise TrainingPaused(returned["message"])
    return msgspec.json.decode(returned["result"], type=TrainingResult)


def _cause(failed: Exception) -> Exception:
    """The error a failed run stands for: the training code's own, or TrainerLost when a worker went away."""
    failures = getattr(failed, "worker_failures", {}) or {}
    for error in failures.values():
        cause = getattr(error, "cause", None) or error
        if not isinstance(cause, ray.exceptions.RayError):
            return cause
    return TrainerLost(f"A training worker was lost ({type(failed).__name__})", code="trainer_lost")
