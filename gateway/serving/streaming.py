"""What chat and text completions share around the engine: a caller's token budget (admitted before the engine
runs, charged after) and the SSE framing of a stream whose failures come after the status line."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from engines.core.errors import RateLimitError
from gateway.errors import as_platform_error, envelope
from gateway.limits import Limiter
from gateway.observability import RequestLog

_encoder = msgspec.json.Encoder()


class TokenBudget:
    """One caller's tokens per minute for one request; without a limiter, everything is admitted."""

    def __init__(self, limiter: Limiter | None, owner: str) -> None:
        self.limiter = limiter
        self.owner = owner

    async def admit(self, wanted: int) -> None:
        if self.limiter is None:
            return
        verdict = await self.limiter.admit_tokens(self.owner, wanted)
        if not verdict.admitted:
            raise RateLimitError(verdict.reason, retry_after_s=verdict.retry_after_s)

    async def charge(self, tokens: int) -> None:
        if self.limiter is not None:
            await self.limiter.charge_tokens(self.owner, tokens)


async def sse(chunks: AsyncIterator[msgspec.Struct], log: RequestLog) -> AsyncIterator[bytes]:
    """Each chunk as a `data:` event, then `data: [DONE]`. The status line is long sent when a failure comes:
    it goes in the stream in OpenAI's envelope, as OpenAI's API does, and the stream still ends with [DONE] so
    no client waits for more."""
    try:
        async for chunk in chunks:
            yield b"data: " + _encoder.encode(chunk) + b"\n\n"
    except Exception as exc:
        error = as_platform_error(exc)
        log.status = error.status_code
        yield b"data: " + envelope(error) + b"\n\n"
    yield b"data: [DONE]\n\n"
