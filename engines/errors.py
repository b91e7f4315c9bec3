"""The engines' own errors; the tree they belong to is drawn in `engines.core.errors`."""

from __future__ import annotations

from engines.core.errors import InvalidRequestError, ServiceUnavailableError


class AdapterLoadError(InvalidRequestError):
    """An adapter model could not be loaded into the engine."""


class EngineUnavailableError(ServiceUnavailableError):
    """No engine replica can take the request now: stopped, replaced, or at capacity."""
