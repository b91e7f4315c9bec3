"""What a host does to train, whoever asked it to: a lone trainer (`jobs.runner.TrainerActor`) or one worker of
a data-parallel run (`jobs.data_parallel`). It trains below inference's priority on all of the host's cores, finds
the base model and the state to resume from on its own disk (downloading them there), and publishes what it saves
to the artifact store, so nothing it makes depends on this host outliving the run."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import structlog

from engines import cpu_binding
from engines.adapter_cache import AdapterCache, publish_adapter
from engines.artifacts import ArtifactStore, artifact_store_from_url
from engines.default_model import on_this_node
from engines.parking import training_in_progress
from jobs.progress import BufferedReporter
from jobs.results import StepMetrics
from jobs.training_spec import Reporter, TrainingResult, TrainingSpec
from jobs.training_state import SavedCheckpoint, download_state, save_state

TRAINING_NICENESS = 10

log = structlog.get_logger("jobs.training_host")


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


def train_on_this_host(
    spec: TrainingSpec, reporter: Reporter, artifacts: ArtifactStore, job_id: str, *, publish: bool = True
) -> TrainingResult:
    """Trains `spec` here; with `publish`, puts the final adapter in the artifact store (its digest in the result)."""
    # The launcher may have confined Ray's processes to a spare core; training uses the whole node.
    cpu_binding.spread_process(cpu_binding.node_cores())
    # Below inference: a chat request should not wait behind a training step. Niceness is per thread on Linux;
    # the threads torch starts from this one inherit it.
    os.nice(TRAINING_NICENESS)
    spec = msgspec.structs.replace(spec, base_model_path=on_this_node(spec.base_model_path))
    init_dir = None
    if spec.init_adapter is not None:
        cache = AdapterCache(artifacts, Path(spec.output_dir) / "parent")
        init_dir = str(cache.materialize(spec.init_adapter))
    resume_dir = None
    if spec.resume_from is not None:
        target = Path(spec.output_dir) / "resume" / f"step-{spec.resume_from.step}"
        resume_dir = str(download_state(artifacts, job_id, spec.resume_from, target))
    # The training stack is imported here, in the process that trains, and never by the control plane that
    # imports this module for ArtifactLocation and PublishingReporter.
    from jobs.trainer import run_training

    with training_in_progress():  # idle engines on this node stop while it trains (engines.parking)
        result = run_training(spec, reporter, resume_dir, init_adapter_dir=init_dir)
    if not publish:
        return result
    digest = publish_adapter(artifacts, Path(result.adapter_path))
    return msgspec.structs.replace(result, adapter_digest=digest)
