"""Builds the gateway's services from the settings: the store, files, fine-tuning and the model catalog."""

from __future__ import annotations

import msgspec

from engines import cpu_binding
from engines.adapters import AdapterRegistry
from engines.core.settings import Settings
from engines.resources import ResourcePlan
from gateway.serving.models import BaseModelInfo, ModelCatalog
from jobs.files import FileService
from jobs.progress import TrainerLauncher
from jobs.runner import RayTrainerLauncher, TrainingPlacement
from jobs.scheduler import Scheduler
from jobs.service import FineTuningService
from jobs.store import Store


class Services(msgspec.Struct, frozen=True, kw_only=True):
    models: ModelCatalog
    files: FileService
    fine_tuning: FineTuningService


def build_services(
    settings: Settings, plan: ResourcePlan, base: BaseModelInfo, launcher: TrainerLauncher | None = None
) -> Services:
    """`launcher` starts training runs: Ray actors placed by the resource plan unless one is given."""
    store = Store.open(settings.store_url)
    files = FileService(store, settings.data_path / "files", max_bytes=settings.max_upload_bytes)
    roots = [settings.data_path]
    threads = settings.training_threads or len(cpu_binding.node_cores())
    if launcher is None:
        placement = TrainingPlacement(
            cpus=plan.trainer_cpus, gpus=plan.trainer_gpus, parallel_jobs=plan.max_parallel_jobs, threads=threads
        )
        launcher = RayTrainerLauncher(placement, settings.log_level)
    scheduler = Scheduler(
        store,
        files,
        launcher,
        base_model_path=base.root,
        data_roots=roots,
        parallel_jobs=plan.max_parallel_jobs,
        training_threads=threads,
        has_gpu=plan.trainer_gpus > 0,
        max_lora_rank=settings.max_lora_rank,
    )
    fine_tuning = FineTuningService(
        store,
        files,
        scheduler,
        base_model_id=base.id,
        jobs_dir=settings.data_path / "fine_tuning",
        data_roots=roots,
        max_lora_rank=settings.max_lora_rank,
    )
    registry = AdapterRegistry(
        settings.adapters_path,
        base_model_id=base.id,
        max_lora_rank=settings.max_lora_rank,
        sources=[fine_tuning.served_adapters],
    )
    scheduler.on_models_published.append(registry.invalidate)
    return Services(models=ModelCatalog(base, registry), files=files, fine_tuning=fine_tuning)
