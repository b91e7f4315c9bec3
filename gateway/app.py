"""The Litestar application: routes, the error envelope, the access log. Services are injected, so the
same app runs behind Ray Serve with real engines or in tests with a fake one."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware

from engines.core.settings import Settings
from gateway.auth import AuthMiddleware, KeyRing, RateLimitMiddleware
from gateway.engine_client import EngineClient
from gateway.errors import handle_exception
from gateway.limits import Limiter, LocalLimiter
from gateway.observability import AccessLogMiddleware
from gateway.routes import files as file_routes
from gateway.routes import fine_tuning as job_routes
from gateway.routes import seed_jobs
from gateway.routes.chat import create_chat_completion
from gateway.routes.docs import openapi_json
from gateway.routes.health import health
from gateway.routes.models import list_models, retrieve_model
from gateway.routes.seed import seed_chat
from gateway.serving.chat import ChatService
from gateway.serving.models import ModelCatalog
from jobs.files import FileService
from jobs.service import FineTuningService

ROUTES = [
    health,
    openapi_json,
    list_models,
    retrieve_model,
    create_chat_completion,
    seed_chat,
    file_routes.upload_file,
    file_routes.list_files,
    file_routes.retrieve_file,
    file_routes.file_content,
    file_routes.delete_file,
    job_routes.create_job,
    job_routes.list_jobs,
    job_routes.retrieve_job,
    job_routes.cancel_job,
    job_routes.list_events,
    job_routes.list_checkpoints,
    seed_jobs.seed_fine_tune,
    seed_jobs.seed_list_jobs,
    seed_jobs.seed_get_job,
    seed_jobs.seed_cancel_job,
]


def create_app(
    settings: Settings,
    engine: EngineClient,
    models: ModelCatalog,
    files: FileService,
    fine_tuning: FineTuningService,
    limiter: Limiter | None = None,
) -> Litestar:
    """`limiter` is shared across gateway replicas under Serve; without one, limits are kept in-process."""
    if limiter is None and (settings.rate_limit_rpm or settings.rate_limit_tpm):
        limiter = LocalLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm)
    chat = ChatService(engine, models, max_n=settings.max_n, limiter=limiter if settings.rate_limit_tpm else None)
    middleware = [AccessLogMiddleware, DefineMiddleware(AuthMiddleware, keys=KeyRing.from_settings(settings))]
    if limiter is not None and settings.rate_limit_rpm:
        middleware.append(DefineMiddleware(RateLimitMiddleware, limiter=limiter))
    state = {"engine": engine, "models": models, "chat": chat, "files": files, "fine_tuning": fine_tuning}
    return Litestar(
        route_handlers=ROUTES,
        state=State({**state, "settings": settings}),
        exception_handlers={Exception: handle_exception},
        middleware=middleware,
        on_startup=[fine_tuning.recover],
        on_shutdown=[fine_tuning.scheduler.close],
        request_max_body_size=max(settings.max_upload_bytes + 1024 * 1024, settings.max_request_bytes),
        openapi_config=None,
        debug=False,
    )
