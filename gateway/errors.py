"""The gateway's exception tree, and the one place that turns any exception into OpenAI's error envelope."""

from __future__ import annotations

import math
import re

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from engines.errors import EngineError
from gateway.protocol.errors import ErrorBody, ErrorEnvelope
from jobs.errors import FileTooLargeError, JobError, NotFoundError

log = structlog.get_logger("gateway.errors")


class APIError(Exception):
    """An error answered to the client as OpenAI's envelope with `status_code`."""

    status_code = 500
    error_type = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


class InvalidRequest(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class NotFound(APIError):
    status_code = 404
    error_type = "invalid_request_error"


class PayloadTooLarge(APIError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(APIError):
    status_code = 429
    error_type = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s or 60)))}
        if retry_after_s is None:
            headers["x-should-retry"] = "false"  # this request can never fit the limit
        super().__init__(message, code="rate_limit_exceeded", headers=headers)


class ServiceUnavailable(APIError):
    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = "service_unavailable") -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})


def model_not_found(model: str) -> NotFound:
    return NotFound(
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def decode_error(exc: msgspec.DecodeError) -> InvalidRequest:
    """A body that is not JSON, or does not fit the request type: 400 naming the parameter."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _MSGSPEC_PATH.search(text)
        param = (match.group(1) or None) if match else None  # an empty path is the whole body
        reason = text[: match.start()] if match else text
        if reason.startswith("Object missing required field"):
            field = reason.split("`")[1]
            name = f"{param}.{field}" if param else field
            return InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        where = f" for '{param}'" if param else ""
        return InvalidRequest(f"Invalid value{where}: {reason}.", param=param, code="invalid_value")
    return InvalidRequest(
        f"We could not parse the JSON body of your request. ({text})",
        code="invalid_json",
    )


def error_body(error_type: str, message: str, param: str | None, code: str | None) -> bytes:
    return msgspec.json.encode(ErrorEnvelope(ErrorBody(message=message, type=error_type, param=param, code=code)))


def handle_exception(request: Request, exc: Exception) -> Response:
    """Litestar's handler for every exception: OpenAI's envelope, never a stack trace."""
    if isinstance(exc, APIError):
        status, kind, message, param, code, headers = (
            exc.status_code,
            exc.error_type,
            exc.message,
            exc.param,
            exc.code,
            exc.headers,
        )
    elif isinstance(exc, EngineError):
        status, kind, message, param, code = exc.status_code, exc.error_type, exc.message, exc.param, exc.code
        headers = {"Retry-After": "1"} if status == 503 else {}
    elif isinstance(exc, JobError):
        status = 404 if isinstance(exc, NotFoundError) else 413 if isinstance(exc, FileTooLargeError) else 400
        kind, message, param, code, headers = "invalid_request_error", exc.message, exc.param, exc.code, {}
    elif isinstance(exc, NotFoundException):
        status, kind, param, code, headers = 404, "invalid_request_error", None, "not_found", {}
        message = f"Unknown request URL: {request.method} {request.url.path}."
    elif isinstance(exc, MethodNotAllowedException):
        status, kind, param, code = 405, "invalid_request_error", None, "method_not_allowed"
        message = f"Method {request.method} is not allowed for {request.url.path}."
        headers = dict(exc.headers or {})
    elif isinstance(exc, ValidationException):
        status, kind, param, code, headers = 400, "invalid_request_error", None, "invalid_request", {}
        message = exc.detail if isinstance(exc.detail, str) else "Invalid request."
    elif isinstance(exc, HTTPException):
        status, kind, param, code = exc.status_code, "invalid_request_error", None, None
        message, headers = str(exc.detail), dict(exc.headers or {})
        if status >= 500:
            kind = "server_error"
    else:
        log.error("unhandled_exception", path=request.url.path, exc_info=exc)
        status, kind, param, code, headers = 500, "server_error", None, "internal_error", {}
        message = "The server had an error while processing your request. Sorry about that!"
    body = error_body(kind, message, param, code)
    return Response(content=body, status_code=status, headers=headers, media_type="application/json")
