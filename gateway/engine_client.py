"""How the gateway reaches the engines: a small protocol, and its Ray Serve implementation that routes
adapter requests to replicas holding the adapter (model multiplexing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestCancelledError
from ray.serve.handle import DeploymentHandle

from engines.core.errors import PlatformError
from engines.embeddings import EmbedRequest, EmbedResult
from engines.errors import EngineUnavailableError
from engines.protocol import GenerateChunk, GenerateRequest, TokenizeRequest, TokenizeResult


class EngineClient(Protocol):
    def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        """Streams the engine's chunks; raises EngineError subclasses for failures."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Health and load of an engine replica; raises EngineUnavailableError when none answers."""
        ...

    async def tokenize(self, request: TokenizeRequest) -> TokenizeResult: ...

    async def detokenize(self, tokens: list[int]) -> str: ...

    async def tokenizer_info(self) -> dict[str, Any]: ...


class RayEngineClient:
    def __init__(self, handle: DeploymentHandle, *, health_timeout_s: float = 5.0) -> None:
        self._handle = handle
        self._health_timeout_s = health_timeout_s

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        model_id = request.adapter.serving_id if request.adapter else ""
        handle = self._handle.options(stream=True, multiplexed_model_id=model_id)
        responses = handle.generate.remote(request)
        finished = False
        try:
            async for chunk in responses:
                yield chunk
            finished = True
        except BaseException as exc:
            raise _engine_error(exc) from None
        finally:
            if not finished:
                # The client went away (or the request failed): stop the generation in the engine. A request
                # that never reached a replica re-raises its own failure here, which is already on its way up.
                with contextlib.suppress(Exception):
                    responses.cancel()

    async def tokenize(self, request: TokenizeRequest) -> TokenizeResult:
        return await self._call("tokenize", request)

    async def detokenize(self, tokens: list[int]) -> str:
        return await self._call("detokenize", tokens)

    async def tokenizer_info(self) -> dict[str, Any]:
        return await self._call("tokenizer_info")

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handle, method).remote(*args)
        except Exception as exc:
            raise _engine_error(exc) from None

    async def stats(self) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._handle.stats.remote(), self._health_timeout_s)
        except TimeoutError:
            raise EngineUnavailableError("No engine replica answered the health check in time.") from None
        except Exception as exc:
            raise _engine_error(exc) from None


class RayEmbeddingClient:
    """The embedding deployment's replicas, any of which can take any request."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        try:
            return await self._handle.embed.remote(request)
        except Exception as exc:
            raise _engine_error(exc) from None


def _engine_error(exc: BaseException) -> BaseException:
    """Unwraps Ray's wrappers: engine errors pass through, lost replicas and full queues become 503."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)):
        return exc
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, PlatformError):
        return cause
    if isinstance(cause, BackPressureError):
        return EngineUnavailableError("The engines are at capacity; retry shortly.", code="engine_overloaded")
    if isinstance(
        cause,
        (RayActorError, ActorDiedError, ActorUnavailableError, DeploymentUnavailableError, RequestCancelledError),
    ):
        return EngineUnavailableError("The engine replica serving this request stopped; retry shortly.")
    return exc
