"""The platform's one exception tree. Every error a client can see carries what OpenAI's envelope needs,
its HTTP status, error type, message, param and code, so the gateway turns any of them into a response in
one place. They cross Ray process boundaries (engine replicas, trainers), so they pickle by value.

    PlatformError                         500 server_error
    ├── InvalidRequestError               400 invalid_request_error
    │   ├── AdapterLoadError              (engines) an adapter model could not be loaded
    │   ├── InvalidHyperparameterError    (jobs) param: the hyperparameter's bare name
    │   └── InvalidTrainingFileError      (jobs) the message names the 1-based line at fault
    ├── AuthenticationError               401 invalid_request_error, code invalid_api_key
    ├── PermissionDeniedError             403 invalid_request_error: the caller may see it, not change it
    ├── NotFoundError                     404 invalid_request_error
    ├── PayloadTooLargeError              413 invalid_request_error
    ├── RateLimitError                    429 rate_limit_exceeded, with Retry-After
    ├── ServiceUnavailableError           503 service_unavailable, with Retry-After
    │   └── EngineUnavailableError        (engines) no replica can take the request now
    ├── TrainingCancelled                 (jobs) a run stopped because its job was cancelled
    ├── TrainingPaused                    (jobs) a run stopped, its state saved, because its job was paused
    └── TrainerLost                       (jobs) a run's process or node went away; the job resumes
"""

from __future__ import annotations

import math
from typing import Any


class PlatformError(Exception):
    """Base of every platform error: answered as OpenAI's envelope with `status_code` and `error_type`."""

    status_code: int = 500
    error_type: str = "server_error"

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

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), dict(self.__dict__)))


def _rebuild(cls: type[PlatformError], state: dict[str, Any]) -> PlatformError:
    error = cls.__new__(cls)
    Exception.__init__(error, state["message"])
    error.__dict__.update(state)
    return error


class InvalidRequestError(PlatformError):
    """The request cannot be served as sent: a bad parameter value, too long a prompt, an unusable file."""

    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(PlatformError):
    """No API key, or one the platform does not know."""

    status_code = 401
    error_type = "invalid_request_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_api_key")


class PermissionDeniedError(PlatformError):
    """The caller may use the object but not change it (a shared model)."""

    status_code = 403
    error_type = "invalid_request_error"


class NotFoundError(PlatformError):
    """No such object (model, file, job) for this caller."""

    status_code = 404
    error_type = "invalid_request_error"


class PayloadTooLargeError(PlatformError):
    """A request body or upload over its size limit."""

    status_code = 413
    error_type = "invalid_request_error"


class RateLimitError(PlatformError):
    """Over a per-key limit. `retry_after_s` None: this request can never fit the limit."""

    status_code = 429
    error_type = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s or 60)))}
        if retry_after_s is None:
            headers["x-should-retry"] = "false"
        super().__init__(message, code="rate_limit_exceeded", headers=headers)


class ServiceUnavailableError(PlatformError):
    """The platform cannot take the request now; retrying after `Retry-After` seconds may help."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = "service_unavailable", retry_after: int = 1
    ) -> None:
        super().__init__(message, param=param, code=code, headers={"Retry-After": str(retry_after)})


def model_not_found(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.", param="model", code="model_not_found"
    )
