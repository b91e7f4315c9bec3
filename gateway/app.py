"""The Litestar application: routes, the error envelope, the access log. Services are injected, so the
same app runs behind Ray Serve with real engines or in tests with a fake one."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State

from gateway.engine_client import EngineClient
from gateway.errors import handle_exception
from gateway.observability import AccessLogMiddleware
from gateway.routes.chat import create_chat_completion
from gateway.routes.health import health
from gateway.routes.models import list_models, retrieve_model
from gateway.routes.seed import seed_chat
from gateway.serving.chat import ChatService
from gateway.serving.models import ModelCatalog
from gateway.settings import Settings


def create_app(settings: Settings, engine: EngineClient, models: ModelCatalog) -> Litestar:
    chat = ChatService(engine, models, max_n=settings.max_n)
    return Litestar(
        route_handlers=[health, list_models, retrieve_model, create_chat_completion, seed_chat],
        state=State({"engine": engine, "models": models, "chat": chat, "settings": settings}),
        exception_handlers={Exception: handle_exception},
        middleware=[AccessLogMiddleware],
        openapi_config=None,
        debug=False,
    )
