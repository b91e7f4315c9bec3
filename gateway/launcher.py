"""`python -m gateway` / `make run`: validate settings, prepare the model, start (or join) Ray, deploy,
serve until SIGINT/SIGTERM, then drain and shut down everything this process started."""

from __future__ import annotations

import os
import signal
import sys
import threading

import ray
import structlog
from ray import serve

from engines.core.settings import SettingsError
from engines.default_model import DefaultModelError
from engines.embeddings import EmbeddingModelError
from engines.resources import ResourceError
from gateway.bootstrap import LaunchError, prepare, proxy_port, uses_direct_ingress
from gateway.deployment import APP_NAME, QUIET, build_platform

log = structlog.get_logger("gateway.launcher")


def serve_forever() -> int:
    stop = threading.Event()
    owns_cluster = not os.environ.get("RAY_ADDRESS")
    try:
        settings, plan, model_path, created = prepare()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        http = {"host": settings.serve_host, "port": proxy_port(settings)}
        serve.start(http_options=http, logging_config=QUIET)
        platform = build_platform(settings, plan, model_path, created, listen=uses_direct_ingress(settings))
        serve.run(platform, name=APP_NAME, route_prefix="/")
    except (SettingsError, DefaultModelError, EmbeddingModelError, ResourceError, LaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        _shutdown(owns_cluster=owns_cluster)
        return 2
    log.info(
        "platform_ready",
        url=f"http://{settings.serve_host}:{settings.serve_port}/v1",
        model=settings.model_name,
        ingress="gateway replicas" if uses_direct_ingress(settings) else "Serve proxy",
    )
    while not stop.wait(1.0):
        pass
    log.info("platform_stopping")
    _shutdown(owns_cluster=owns_cluster, app_name=APP_NAME)
    log.info("platform_stopped")
    return 0


def _shutdown(*, owns_cluster: bool, app_name: str | None = None) -> None:
    if not ray.is_initialized():
        return
    try:
        if app_name is not None:
            # Deleting the app first lets its replicas finish in-flight requests (up to their graceful
            # shutdown timeout) while the gateway replicas, or the proxy, still carry the responses; new
            # connections are refused.
            serve.delete(app_name)
        if owns_cluster:
            serve.shutdown()
    finally:
        ray.shutdown()
