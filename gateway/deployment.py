"""The Ray Serve application: the Litestar gateway as ingress in front of the engine deployment.
`build_app` is also the import path for `serve run gateway.deployment:build_app`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from engines.config import EngineConfig
from engines.core.logs import configure_logging
from engines.core.settings import Settings
from engines.embeddings import EmbeddingDeployment, max_tokens_of, resolve_embedding_model
from engines.resources import ResourcePlan
from gateway.app import create_app
from gateway.bootstrap import prepare
from gateway.engine_client import RayEmbeddingClient, RayEngineClient
from gateway.limits import LocalLimiter, ServeLimiter
from gateway.listener import Listener
from gateway.metrics_hub import MetricsHub, ServeHub
from gateway.services import build_services
from gateway.serving.models import BaseModelInfo
from jobs.assembly import BaseModel

APP_NAME = "llm-platform"
# The gateway writes its own access log (one JSON line per request); Serve's would duplicate it.
QUIET = {"enable_access_log": False}
GRACEFUL_SHUTDOWN_S = 20
log = structlog.get_logger("gateway.deployment")


@serve.ingress()
class Gateway:
    def __init__(
        self,
        settings: Settings,
        engine: DeploymentHandle,
        base: BaseModelInfo,
        plan: ResourcePlan,
        control_plane: DeploymentHandle,
        limits: DeploymentHandle | None = None,
        *,
        listen: bool = False,
        embedding: BaseModelInfo | None = None,
        embedder: DeploymentHandle | None = None,
        metrics_hub: DeploymentHandle | None = None,
    ) -> None:
        """With `listen`, the replica serves SERVE_PORT itself (gateway/listener.py) from when Serve starts the
        app's lifespan until it stops it, which Serve does after the replica has left its routing. `embedder`
        serves the `embedding` model."""
        configure_logging(settings.log_level)
        services = build_services(settings, plan, base, control_plane=control_plane, embedding=embedding)
        limiter = ServeLimiter(limits) if limits is not None else None
        embeddings = RayEmbeddingClient(embedder) if embedder is not None else None
        hub = ServeHub(metrics_hub) if metrics_hub is not None else None
        self._app = create_app(settings, RayEngineClient(engine), services, limiter, embeddings, hub)
        if listen:
            # Shorter than Serve's grace, so in-flight streams end before Serve kills the replica.
            listener = Listener(
                self._app, settings.serve_host, settings.serve_port, shutdown_timeout_s=GRACEFUL_SHUTDOWN_S - 5
            )
            self._app.on_startup.append(listener.start)
            self._app.on_shutdown.append(listener.stop)

    def __serve_build_asgi_app__(self) -> Litestar:
        return self._app


def engine_config(settings: Settings, plan: ResourcePlan, model_path: str) -> EngineConfig:
    return EngineConfig(
        model_id=settings.model_name,
        model_path=model_path,
        max_model_len=settings.max_model_len,
        dtype=settings.dtype,
        device="cuda" if plan.engine_gpus > 0 else "cpu",
        tensor_parallel_size=plan.tensor_parallel_size,
        kv_cache_gib=settings.kv_cache_gib,
        gpu_memory_utilization=min(settings.gpu_memory_utilization, plan.engine_gpus or 1.0),
        enforce_eager=settings.enforce_eager,
        max_loras=settings.max_loras,
        max_cpu_loras=settings.max_cpu_loras,
        max_lora_rank=settings.max_lora_rank,
        max_num_seqs=settings.max_ongoing_requests,
        threads=settings.engine_threads,
        replicas=plan.engine_replicas,
        cpu_binding=settings.cpu_binding,
        park_while_training=settings.park_engine_while_training,
        artifact_store=settings.artifact_store,
        artifact_default_root=str(settings.data_path),
        adapter_cache_dir=str(settings.cache_path / "adapters"),
        metrics=settings.metrics,
    )


def build_platform(
    settings: Settings, plan: ResourcePlan, model_path: str, created: int, *, listen: bool = False
) -> Application:
    """`listen`: the gateway replicas serve SERVE_PORT themselves rather than behind Serve's proxy."""
    # Imported here, not with the module: every gateway replica imports this module for `Gateway`, and
    # the engine's vLLM and torch would cost each of them seconds of CPU while the engine starts.
    from engines.deployment import EngineDeployment
    from jobs.control_plane import ControlPlane

    config = engine_config(settings, plan, model_path)
    actor_options: dict[str, Any] = {"num_cpus": plan.engine_cpus, "num_gpus": plan.engine_gpus}
    engine = serve.deployment(EngineDeployment).options(
        name="engine",
        num_replicas=plan.engine_replicas,
        ray_actor_options=actor_options,
        max_ongoing_requests=settings.max_ongoing_requests,
        max_queued_requests=settings.max_queued_requests,
        health_check_period_s=10,
        health_check_timeout_s=60,
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
        logging_config=QUIET,
    )
    on_head: dict[str, Any] = {"num_cpus": 0, **({"resources": plan.control_resources} if plan.control_resources else {})}
    gateway = serve.deployment(Gateway).options(
        name="gateway",
        num_replicas=settings.gateway_replicas,
        ray_actor_options=on_head,
        max_ongoing_requests=4 * settings.max_ongoing_requests * plan.engine_replicas,
        graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
        logging_config=QUIET,
    )
    base = BaseModelInfo(id=settings.model_name, root=model_path, created=created, max_model_len=settings.max_model_len)
    limits = None
    if settings.rate_limit_rpm or settings.rate_limit_tpm:
        limits = (
            serve.deployment(LocalLimiter)
            .options(name="limits", num_replicas=1, ray_actor_options=on_head, logging_config=QUIET)
            .bind(settings.rate_limit_rpm, settings.rate_limit_tpm)
        )
    control_plane = (
        serve.deployment(ControlPlane)
        .options(
            name="control_plane",
            num_replicas=1,
            ray_actor_options=on_head,
            max_ongoing_requests=1000,
            graceful_shutdown_timeout_s=GRACEFUL_SHUTDOWN_S,
            logging_config=QUIET,
        )
        .bind(settings, plan, BaseModel(id=base.id, path=base.root))
    )
    embedding, embedder = None, None
    embedding_path = resolve_embedding_model(settings.embedding_model)
    if embedding_path is not None:
        embedding = BaseModelInfo(
            id=settings.embedding_model,
            root=embedding_path,
            created=int(Path(embedding_path).stat().st_mtime),
            max_model_len=max_tokens_of(embedding_path),
        )
        embedder = (
            serve.deployment(EmbeddingDeployment)
            .options(name="embeddings", num_replicas=1, ray_actor_options=on_head, logging_config=QUIET)
            .bind(settings.embedding_model, settings.log_level)
        )
    hub = None
    if settings.metrics:
        hub = (
            serve.deployment(MetricsHub)
            .options(name="metrics", num_replicas=1, ray_actor_options=on_head, logging_config=QUIET)
            .bind()
        )
    engine_app = engine.bind(config, settings.log_level, metrics_hub=hub)
    return gateway.bind(
        settings,
        engine_app,
        base,
        plan,
        control_plane,
        limits,
        listen=listen,
        embedding=embedding,
        embedder=embedder,
        metrics_hub=hub,
    )


def build_app(args: dict[str, str] | None = None) -> Application:
    """For `serve run gateway.deployment:build_app`: settings from the environment (and `KEY=value` args)."""
    settings, plan, model_path, created = prepare({**(args or {})})
    return build_platform(settings, plan, model_path, created)
