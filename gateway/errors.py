"""The one place that turns any exception into OpenAI's error envelope: platform errors carry their own
status, type, param and code (engines.core.errors); Litestar's own exceptions and anything unexpected
are mapped to the same shape here, never a stack trace."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from engines.core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, PlatformError
from gateway.protocol.errors import ErrorBody, ErrorEnvelope

log = structlog.get_logger("gateway.errors")

INTERNAL_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_encoder = msgspec.json.Encoder()


def envelope(error: PlatformError) -> bytes:
    body = ErrorBody(message=error.message, type=error.error_type, param=error.param, code=error.code)
    return _encoder.encode(ErrorEnvelope(body))


def as_platform_error(exc: BaseException, *, method: str = "", path: str = "") -> PlatformError:
    """Any exception as the platform error it is answered with; unexpected ones are logged and become a 500."""
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, NotFoundException):
        return NotFoundError(f"Unknown request URL: {method} {path}.", code="not_found")
    if isinstance(exc, MethodNotAllowedException):
        error = PlatformError(f"Method {method} is not allowed for {path}.", code="method_not_allowed")
        error.headers = dict(exc.headers or {})
        return _with_status(error, 405, "invalid_request_error")
    if isinstance(exc, ValidationException):
        return _validation_error(exc)
    if isinstance(exc, HTTPException):
        if exc.detail == "Invalid multipart/form-data":  # the only multipart route is the file upload
            return InvalidRequestError(
                "Missing required parameter: 'file' (send the file as a multipart/form-data upload).",
                param="file",
                code="missing_required_parameter",
            )
        if exc.status_code == 413:
            return PayloadTooLargeError(f"The request body is too large: {exc.detail}.", code="payload_too_large")
        kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
        error = PlatformError(str(exc.detail))
        error.headers = dict(exc.headers or {})
        return _with_status(error, exc.status_code, kind)
    log.error("unhandled_exception", path=path, exc_info=exc)
    return PlatformError(INTERNAL_MESSAGE, code="internal_error")


def handle_exception(request: Request, exc: Exception) -> Response:
    """Litestar's handler for every exception."""
    error = as_platform_error(exc, method=request.method, path=request.url.path)
    return Response(
        content=envelope(error), status_code=error.status_code, headers=error.headers, media_type="application/json"
    )


def decode_error(exc: msgspec.DecodeError) -> InvalidRequestError:
    """A body that is not JSON, or does not fit the request type: 400 naming the parameter."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _MSGSPEC_PATH.search(text)
        param = (match.group(1) or None) if match else None  # an empty path is the whole body
        return _invalid_value(text[: match.start()] if match else text, param)
    return InvalidRequestError(f"We could not parse the JSON body of your request. ({text})", code="invalid_json")


def _invalid_value(reason: str, param: str | None) -> InvalidRequestError:
    if reason.startswith("Object missing required field"):
        field = reason.split("`")[1]
        name = f"{param}.{field}" if param else field
        return InvalidRequestError(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    where = f" for '{param}'" if param else ""
    return InvalidRequestError(f"Invalid value{where}: {reason}.", param=param, code="invalid_value")


def _validation_error(exc: ValidationException) -> InvalidRequestError:
    """Litestar's validation of query parameters and multipart forms, with the parameter it names. (JSON bodies
    never get here: `gateway.requests` decodes them, and `decode_error` words their errors.)"""
    problems: list[Any] = exc.extra if isinstance(exc.extra, list) else []
    problem = problems[0] if problems and isinstance(problems[0], dict) else {}
    message = str(problem.get("message") or exc.detail)
    if problem.get("source") == "body":
        return _invalid_value(message, None)
    key = problem.get("key")
    if key:
        return InvalidRequestError(f"Invalid '{key}': {message}.", param=str(key), code="invalid_value")
    return InvalidRequestError(message, code="invalid_request")


def _with_status(error: PlatformError, status: int, kind: str) -> PlatformError:
    """A one-off status for Litestar's routing errors, which have no class of their own in the tree."""
    error.status_code = status
    error.error_type = kind
    return error
