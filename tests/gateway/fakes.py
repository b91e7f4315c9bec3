"""A scripted stand-in for the engine, for fast tests of gateway logic only (the e2e tests use vLLM)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engines.core.errors import PlatformError
from engines.errors import EngineUnavailableError
from engines.protocol import ChoiceDelta, GenerateChunk, GenerateRequest, TokenLogprob, TopLogprob


class FakeEngine:
    """Answers every choice with `reply`, one word per chunk; records the requests it saw."""

    def __init__(self, reply: str = "Hello there friend", *, error: PlatformError | None = None) -> None:
        self.reply = reply
        self.error = error
        self.fail_after_chunks: int | None = None
        self.mid_stream_failure: Exception = EngineUnavailableError(
            "The engine replica serving this request stopped; retry shortly."
        )
        self.requests: list[GenerateRequest] = []
        self.healthy = True

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        words = self.reply.split(" ")
        limit = request.sampling.max_tokens or len(words)
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)][:limit]
        for position, piece in enumerate(pieces):
            if position == self.fail_after_chunks:
                raise self.mid_stream_failure
            last = position == len(pieces) - 1
            finish = ("length" if limit < len(words) else "stop") if last else None
            logprobs = None
            if request.sampling.logprobs is not None:
                logprobs = [TokenLogprob(piece, -0.5, [TopLogprob(piece, -0.5)][: request.sampling.logprobs + 1])]
            yield GenerateChunk(
                prompt_tokens=7,
                choices=[
                    ChoiceDelta(index=i, text=piece, tokens=1, logprobs=logprobs, finish_reason=finish)
                    for i in range(request.sampling.n)
                ],
            )

    async def stats(self) -> dict[str, Any]:
        if not self.healthy:
            raise EngineUnavailableError("down")
        return {"running": 0, "aborted": 0}
