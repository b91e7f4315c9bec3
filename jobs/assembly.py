"""Builds the jobs layer's objects from the settings: the store and files any process may open, and the
fine-tuning service only the control plane (or a single-process test) runs."""

from __future__ import annotations

import msgspec

from engines import cpu_binding
from engines.artifacts import artifact_store_from_url
from engines.core.settings import Settings
from engines.resources import ResourcePlan
from jobs.files import FileService
from jobs.progress import TrainerLauncher
from jobs.runner import RayTrainerLauncher, TrainingPlacement, cluster_capacity
from jobs.scheduler import Scheduler
from jobs.service import FineTuningService
from jobs.store import Store
from jobs.training_host import ArtifactLocation


class BaseModel(msgspec.Struct, frozen=True, kw_only=True):
    """The base model jobs fine-tune: its id, and its local directory on the nodes that train."""

    id: str
    path: str


def open_files(settings: Settings) -> tuple[Store, FileService]:
    """The metadata store, and the files service over it and the artifact store."""
    store = Store.open(settings.store_url)
    artifacts = artifact_store_from_url(settings.artifact_store, default_root=settings.data_path)
    return store, FileService(store, artifacts, max_bytes=settings.max_upload_bytes)


def build_fine_tuning(
    settings: Settings, plan: ResourcePlan, base: BaseModel, launcher: TrainerLauncher | None = None
) -> FineTuningService:
    """`launcher` starts training runs: Ray actors placed by the resource plan unless one is given."""
    store, files = open_files(settings)
    roots = [settings.data_path]
    threads = settings.training_threads or len(cpu_binding.node_cores())
    if launcher is None:
        placement = TrainingPlacement(cpus=plan.trainer_cpus, gpus=plan.trainer_gpus, threads=threads)
        artifacts = ArtifactLocation(settings.artifact_store, str(settings.data_path))
        launcher = RayTrainerLauncher(placement, settings.log_level, artifacts)
    scheduler = Scheduler(
        store,
        files,
        launcher,
        base_model_path=base.path,
        data_roots=roots,
        capacity=cluster_capacity(plan),
        training_threads=threads,
        has_gpu=plan.trainer_gpus > 0,
        max_lora_rank=settings.max_lora_rank,
        max_attempts=settings.training_max_attempts,
    )
    return FineTuningService(
        store,
        files,
        scheduler,
        base_model_id=base.id,
        jobs_dir=settings.data_path / "fine_tuning",
        data_roots=roots,
        max_lora_rank=settings.max_lora_rank,
    )
