"""One JSON log line per request: request id (also returned as `x-request-id`), model, status, tokens,
time to first token and total latency. Handlers fill the request's RequestLog as they learn things."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from litestar import Request
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from engines.core.errors import PlatformError
from gateway.auth import scope_caller
from gateway.errors import as_platform_error, envelope

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics

log = structlog.get_logger("gateway.access")

_STATE_KEY = "request_log"
_REQUEST_ID = b"x-request-id"


@dataclass
class RequestLog:
    request_id: str
    method: str
    path: str
    started_at: float = field(default_factory=time.monotonic)
    model: str | None = None
    status: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_at: float | None = None
    served_model: str = ""
    """The model that served the request, once its name resolved (metrics label only such names)."""
    adapter: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    emitted: bool = False

    def served(self, model: str, adapter: str | None = None) -> None:
        self.served_model, self.adapter = model, adapter or ""

    def emit(self) -> None:
        if self.emitted:
            return
        self.emitted = True
        now = time.monotonic()
        log.info(
            "request",
            request_id=self.request_id,
            method=self.method,
            path=self.path,
            model=self.model,
            status=self.status,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            ttft_ms=round((self.first_token_at - self.started_at) * 1000, 1) if self.first_token_at else None,
            latency_ms=round((now - self.started_at) * 1000, 1),
        )


def request_log(request: Request) -> RequestLog:
    return request.scope["state"][_STATE_KEY]


class AccessLogMiddleware:
    """Pure ASGI middleware, so the line is written when a streamed body has been fully sent."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(_REQUEST_ID)
        # Under Ray Serve the proxy sets x-request-id on the request and echoes it on the response.
        request_id = incoming.decode() if incoming else uuid.uuid4().hex
        method = str(scope.get("method", ""))
        entry = RequestLog(request_id=request_id, method=method, path=scope["path"])
        scope.setdefault("state", {})[_STATE_KEY] = entry
        metrics = self.metrics
        if metrics is not None:
            metrics.started()

        def finish() -> None:
            if entry.emitted:
                return
            entry.emit()
            if metrics is not None:
                # The route's template, not the path: ids in paths would make a series per object.
                endpoint = scope.get("path_template") or "unmatched"
                key = scope_caller(scope) if entry.status != 401 else ""  # no key was accepted
                metrics.finished(entry, endpoint=endpoint, key=key, ended_at=time.monotonic())

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                if not incoming:
                    message["headers"] = [*message.get("headers", []), (_REQUEST_ID, request_id.encode())]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()

        try:
            await self.app(scope, receive, send_logged)
        except Exception as exc:
            # Errors raised by the middleware below (a missing key, a rate limit) never reach Litestar's
            # handler inside this one; answered here, they keep the request id and the logged status.
            if entry.status is not None:
                raise
            error = as_platform_error(exc, method=method, path=scope["path"])
            await send_error(send_logged, error)
        finally:
            # A client that disconnected mid-stream still gets its line.
            finish()


async def send_error(send: Send, error: PlatformError) -> None:
    body = envelope(error)
    headers = [(key.lower().encode(), value.encode()) for key, value in error.headers.items()]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": error.status_code, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
