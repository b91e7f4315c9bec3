"""Errors an engine raises for one request. They cross Ray process boundaries, so they pickle by value;
the gateway turns them into OpenAI's error envelope."""

from __future__ import annotations


class PlatformError(Exception):
    """A message, and the request parameter and code it concerns; pickles by value across Ray."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self.message, self.param, self.code))


def _rebuild(cls: type[PlatformError], message: str, param: str | None, code: str | None) -> PlatformError:
    return cls(message, param=param, code=code)


class EngineError(PlatformError):
    """Base of the engine's errors."""

    status_code = 500
    error_type = "server_error"


class InvalidRequestError(EngineError):
    """The request cannot be served as sent (too long a prompt, a bad parameter value)."""

    status_code = 400
    error_type = "invalid_request_error"


class AdapterLoadError(InvalidRequestError):
    """An adapter model could not be loaded into the engine."""


class EngineUnavailableError(EngineError):
    """The engine cannot take work now; retrying later may help."""

    status_code = 503
    error_type = "service_unavailable"
