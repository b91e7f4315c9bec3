"""Everything before the platform is deployed: settings checked, the model prepared, Ray started or joined,
the resource plan made. Both entry points use it: `python -m gateway` (gateway.launcher) and
`serve run gateway.deployment:build_app`."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import ray
import structlog

from engines import cpu_binding
from engines.core.logs import configure_logging
from engines.core.settings import Settings
from engines.default_model import ensure_default_model
from engines.resources import ResourceError, ResourcePlan, plan_resources
from gateway.auth import KeyRing

log = structlog.get_logger("gateway.bootstrap")
CLUSTER_POLL_S = 5.0


class LaunchError(RuntimeError):
    """The platform cannot start; the message says why."""


def resolve_model(settings: Settings) -> str:
    """The embedded default model (converted once), a local model directory, or a hub id."""
    if settings.uses_default_model:
        return str(ensure_default_model(settings.cache_path))
    path = Path(settings.model_name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.is_absolute() or settings.model_name.startswith("."):
        raise LaunchError(f"MODEL_NAME={settings.model_name!r} is not a model directory")
    return settings.model_name


def uses_direct_ingress(settings: Settings) -> bool:
    """Whether the gateway replicas listen on SERVE_PORT themselves (gateway/listener.py): on a cluster this
    process starts, where they share the node with the launcher. A joined cluster keeps Serve's proxies,
    which run on every node."""
    return settings.direct_ingress and not os.environ.get("RAY_ADDRESS")


def proxy_port(settings: Settings) -> int:
    """Where Serve's HTTP proxy listens: SERVE_PORT, or with direct ingress any free port (Serve starts its
    proxy either way; it then carries no traffic)."""
    if not uses_direct_ingress(settings):
        return settings.serve_port
    with socket.socket() as probe:
        probe.bind((settings.serve_host, 0))
        return probe.getsockname()[1]


def start_ray(settings: Settings) -> bool:
    """Joins RAY_ADDRESS when set, else starts an embedded cluster. Returns whether this process owns it."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    kwargs = {"namespace": "llm-platform", "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
        return False
    # Ray runs its workers at nice 15; the engine replica's vLLM processes would inherit that and lose
    # the CPU to any ordinary process. Trainers lower their own priority instead (jobs/training_host.py).
    os.environ.setdefault("RAY_worker_niceness", "0")
    # An idle platform's periodic work (Serve's control loop at 10 Hz, Ray's metrics export) keeps waking
    # the CPU; on 2 cores a training script beside the idle platform made 67.2 tokens/s, 76.5 with these two.
    os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    cores = cpu_binding.node_cores()
    if settings.cpu_binding and not cpu_binding.host_has_gpu():
        control = cpu_binding.control_cores(cores, settings.engine_replicas)
        if control is None:
            log.warning(
                "cpu_oversubscribed",
                message=f"{settings.engine_replicas} engine replica(s) on {len(cores)} core(s) leave none for the "
                "gateway and Ray: streams stall under load (see README, Performance)",
            )
        else:
            # Ray's processes inherit this; engine replicas and trainers widen their own affinity again.
            os.environ[cpu_binding.NODE_CORES_ENV] = cpu_binding.format_cores(cores)
            cpu_binding.spread_process(control)
            log.info("cpu_binding", control_plane_cores=control, node_cores=cores)
    ray.init(num_cpus=len(cores), include_dashboard=False, **kwargs)
    return True


def prepare(overrides: dict[str, str] | None = None) -> tuple[Settings, ResourcePlan, str, int]:
    """Settings, the resource plan and the model, checked before any replica starts."""
    settings = Settings.from_env({**os.environ, **(overrides or {})})
    configure_logging(settings.log_level)
    if KeyRing.from_settings(settings) is None:
        log.warning("platform_open", message="API_KEYS is not set: anyone who can reach the port can use the platform")
    model_path = resolve_model(settings)
    start_ray(settings)
    plan = plan_cluster(settings, wait_s=settings.cluster_wait_s if os.environ.get("RAY_ADDRESS") else 0)
    log.info("resource_plan", **{name: getattr(plan, name) for name in plan.__struct_fields__})
    created = int(Path(model_path).stat().st_mtime) if Path(model_path).exists() else int(time.time())
    return settings, plan, model_path, created


def plan_cluster(settings: Settings, *, wait_s: float) -> ResourcePlan:
    """The resource plan over the cluster as it is. A cluster this process joined may still be growing (the head
    starts the platform while worker hosts are still joining), so a plan the cluster is too small for is tried again
    for up to `wait_s` before its error stands."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return plan_resources(
                ray.cluster_resources(),
                engine_replicas=settings.engine_replicas,
                engine_cpus=settings.engine_cpus,
                inference_gpu_fraction=settings.inference_gpu_fraction,
                training_gpu_fraction=settings.training_gpu_fraction,
            )
        except ResourceError as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("waiting_for_hosts", reason=str(exc), seconds_left=round(deadline - time.monotonic()))
            time.sleep(CLUSTER_POLL_S)
