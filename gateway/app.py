"""The Litestar application: routes, the error envelope, the access log, and the generated OpenAPI
document. Services are injected, so the same app runs behind Ray Serve with real engines or in tests
with a fake one."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler, Middleware

from engines.core.settings import Settings
from gateway.auth import AuthMiddleware, KeyRing, RateLimitMiddleware, caller
from gateway.engine_client import EngineClient
from gateway.errors import handle_exception
from gateway.limits import Limiter, LocalLimiter
from gateway.metrics_hub import Hub, MetricsHub, MetricsReporter
from gateway.observability import AccessLogMiddleware
from gateway.requests import PlatformRequest
from gateway.routes import (
    chat,
    completions,
    console,
    embeddings,
    files,
    fine_tuning,
    health,
    metrics,
    models,
    responses,
    seed,
    tokenize,
    uploads,
)
from gateway.services import Services
from gateway.serving.chat import ChatService
from gateway.serving.completions import CompletionService
from gateway.serving.embeddings import EmbeddingClient, EmbeddingService
from gateway.serving.metrics import MetricsService
from gateway.serving.responses import ResponseService
from jobs.uploads import UploadService

API_VERSION = "0.1.0"


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> dict[str, Any]:
    """The OpenAPI document Litestar generates from the handlers' types."""
    return request.app.openapi_schema.to_schema()


ROUTES = [
    health.health,
    openapi_json,
    models.list_models,
    models.retrieve_model,
    models.delete_model,
    models.download_adapter,
    models.download_merged,
    chat.create_chat_completion,
    completions.create_completion,
    responses.create_response,
    embeddings.create_embedding,
    tokenize.tokenize,
    tokenize.detokenize,
    tokenize.tokenizer_info,
    files.upload_file,
    files.list_files,
    files.retrieve_file,
    files.file_content,
    files.delete_file,
    uploads.create_upload,
    uploads.add_upload_part,
    uploads.complete_upload,
    uploads.cancel_upload,
    fine_tuning.create_job,
    fine_tuning.list_jobs,
    fine_tuning.retrieve_job,
    fine_tuning.cancel_job,
    fine_tuning.pause_job,
    fine_tuning.resume_job,
    fine_tuning.list_events,
    fine_tuning.list_checkpoints,
    seed.seed_chat,
    seed.seed_fine_tune,
    seed.seed_list_jobs,
    seed.seed_get_job,
    seed.seed_cancel_job,
]


def _provide(value: object) -> Provide:
    async def provider() -> object:
        return value

    return Provide(provider)


async def _owner(request: Request) -> str:
    return caller(request)


def create_app(
    settings: Settings,
    engine: EngineClient,
    services: Services,
    limiter: Limiter | None = None,
    embedder: EmbeddingClient | None = None,
    metrics_hub: Hub | None = None,
) -> Litestar:
    """`limiter` is shared across gateway replicas under Serve; without one, limits are kept in-process.
    `embedder` serves the catalog's embedding model, where it has one. `metrics_hub` sums the metrics of every
    replica under Serve; without one (and with METRICS on), this process is the whole platform."""
    if limiter is None and (settings.rate_limit_rpm or settings.rate_limit_tpm):
        limiter = LocalLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm)
    token_limiter = limiter if settings.rate_limit_tpm else None
    chat_service = ChatService(engine, services.models, max_n=settings.max_n, limiter=token_limiter)
    completion_service = CompletionService(engine, services.models, max_n=settings.max_n, limiter=token_limiter)
    reporter = MetricsReporter(metrics_hub or MetricsHub()) if settings.metrics else None
    middleware: list[Middleware] = [
        DefineMiddleware(AccessLogMiddleware, metrics=reporter.metrics if reporter else None),
        DefineMiddleware(AuthMiddleware, keys=KeyRing.from_settings(settings)),
    ]
    if limiter is not None and settings.rate_limit_rpm:
        middleware.append(DefineMiddleware(RateLimitMiddleware, limiter=limiter))
    provided = {
        "engine": engine,
        "models": services.models,
        "chat": chat_service,
        "completions": completion_service,
        "responses": ResponseService(chat_service),
        "embeddings": EmbeddingService(embedder, services.models, limiter=token_limiter),
        "files": services.files,
        "uploads": UploadService(services.files.artifacts, services.files),
        "fine_tuning": services.fine_tuning,
    }
    on_startup, on_shutdown = list(services.on_startup), list(services.on_shutdown)
    routes: list[ControllerRouterHandler] = list(ROUTES)
    if reporter is not None:
        provided["metrics"] = MetricsService(reporter, services.models, services.store)
        routes.append(metrics.metrics)
        on_startup.append(reporter.start)
        on_shutdown.insert(0, reporter.stop)
    if settings.console:
        routes += console.console_routes()
    return Litestar(
        route_handlers=routes,
        dependencies={"owner": Provide(_owner), **{name: _provide(value) for name, value in provided.items()}},
        state=State({"settings": settings}),
        request_class=PlatformRequest,
        exception_handlers={Exception: handle_exception},
        middleware=middleware,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        request_max_body_size=max(settings.max_upload_bytes + 1024 * 1024, settings.max_request_bytes),
        openapi_config=OpenAPIConfig(
            title="LLM platform", version=API_VERSION, path="/docs", render_plugins=[], create_examples=False
        ),
        debug=False,
    )
