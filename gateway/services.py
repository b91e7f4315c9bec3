"""Builds the gateway's services from the settings: the model catalog, files, and fine-tuning, which is the
control plane's (reached through its handle) or, in a single process, a local service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from ray.serve.handle import DeploymentHandle

from engines.adapters import AdapterRegistry
from engines.core.settings import Settings
from engines.resources import ResourcePlan
from gateway.jobs_client import ControlPlaneJobs, JobsAPI
from gateway.serving.models import BaseModelInfo, ModelCatalog
from jobs.assembly import BaseModel, build_fine_tuning, open_files
from jobs.export import Exporter, ExportPlace
from jobs.files import FileService
from jobs.models import FineTunedModels
from jobs.progress import TrainerLauncher
from jobs.store import Store


class Services(msgspec.Struct, frozen=True, kw_only=True):
    store: Store
    models: ModelCatalog
    files: FileService
    fine_tuning: JobsAPI
    on_startup: list[Callable[[], Any]] = []
    on_shutdown: list[Callable[[], Awaitable[None]]] = []


def build_services(
    settings: Settings,
    plan: ResourcePlan,
    base: BaseModelInfo,
    *,
    control_plane: DeploymentHandle | None = None,
    launcher: TrainerLauncher | None = None,
    embedding: BaseModelInfo | None = None,
) -> Services:
    """With `control_plane`, jobs are the control plane's; without, this process owns them (and recovers them
    at start-up), which is right only where it is the platform's one process: the fast tests. `embedding` is the
    embedding model the catalog lists, where one is served."""
    on_startup: list[Callable[[], Any]] = []
    on_shutdown: list[Callable[[], Awaitable[None]]] = []
    jobs: JobsAPI
    if control_plane is None:
        service = build_fine_tuning(settings, plan, BaseModel(id=base.id, path=base.root), launcher)
        store, files, jobs = service.store, service.files, service
        on_startup.append(service.recover)
        on_shutdown.append(service.close)
    else:
        store, files = open_files(settings)
        jobs = ControlPlaneJobs(control_plane, store, base_model_id=base.id, data_roots=[settings.data_path])
    registry = AdapterRegistry(
        settings.adapters_path, base_model_id=base.id, max_lora_rank=settings.max_lora_rank, sources=[store.list_models]
    )
    if control_plane is None:
        service.scheduler.on_models_published.append(registry.invalidate)
    # Under Serve (a control plane), merges run as Ray tasks, never in a gateway replica's process.
    place = ExportPlace(settings.artifact_store, str(settings.data_path), base.root)
    exporter = Exporter(place, on_ray=control_plane is not None)
    catalog = ModelCatalog(base, registry, embedding, fine_tuned=FineTunedModels(store, files.artifacts), exporter=exporter)
    return Services(
        store=store,
        models=catalog,
        files=files,
        fine_tuning=jobs,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
