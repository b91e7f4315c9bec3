"""A scripted stand-in for the engine, for fast tests of gateway logic only (the e2e tests use vLLM)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engines.core.errors import InvalidRequestError, PlatformError
from engines.embeddings import EmbedRequest, EmbedResult
from engines.errors import EngineUnavailableError
from engines.protocol import (
    ChoiceDelta,
    GenerateChunk,
    GenerateRequest,
    PromptEcho,
    TokenizeRequest,
    TokenizeResult,
    TokenLogprob,
    TopLogprob,
)


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
        self.tokenized: list[TokenizeRequest] = []
        self.healthy = True

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        echo = self._echo(request) if request.echo else None
        if request.sampling.max_tokens == 0:
            done = [ChoiceDelta(index=i, text="", tokens=0, finish_reason="length") for i in range(request.sampling.n)]
            yield GenerateChunk(prompt_tokens=7, choices=done, prompt=echo)
            return
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
                prompt=echo if position == 0 else None,
            )

    @staticmethod
    def _echo(request: GenerateRequest) -> PromptEcho:
        """A text prompt's words are its tokens (each -1.0, the first without one); token ids read `<id>`."""
        prompt = request.prompt if request.prompt is not None else ""
        words = prompt.split(" ") if isinstance(prompt, str) else [f"<{token}>" for token in prompt]
        tokens = [word if i == 0 else " " + word for i, word in enumerate(words)]
        if request.sampling.prompt_logprobs is None:
            return PromptEcho(text="".join(tokens))
        logprobs = [None] + [TokenLogprob(token, -1.0, []) for token in tokens[1:]]
        return PromptEcho(text="".join(tokens), tokens=tokens, logprobs=logprobs)

    async def tokenize(self, request: TokenizeRequest) -> TokenizeResult:
        """A prompt's characters are its tokens (their code points); messages are one token each."""
        self.tokenized.append(request)
        ids = (
            [ord(char) for char in request.prompt]
            if request.prompt is not None
            else list(range(len(request.messages or [])))
        )
        strs = [chr(token) for token in ids] if request.return_token_strs else None
        return TokenizeResult(tokens=ids, token_strs=strs, max_model_len=256)

    async def detokenize(self, tokens: list[int]) -> str:
        """Ids past the last code point are out of this vocabulary, a 400 as the engine's."""
        if any(token > 0x10FFFF for token in tokens):
            raise InvalidRequestError("Invalid 'tokens': token ids must be between 0 and 1114111.", param="tokens")
        return "".join(chr(token) for token in tokens)

    async def tokenizer_info(self) -> dict[str, Any]:
        return {"tokenizer_class": "FakeTokenizer", "eos_token": "<eos>"}

    async def stats(self) -> dict[str, Any]:
        if not self.healthy:
            raise EngineUnavailableError("down")
        return {"running": 0, "aborted": 0}


class FakeEmbedder:
    """Three-dimensional vectors made from each input's length and first item; one token per character or id."""

    dimensions = 3

    def __init__(self) -> None:
        self.requests: list[EmbedRequest] = []

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        self.requests.append(request)
        if request.dimensions not in (None, self.dimensions):
            raise InvalidRequestError("The fake model cannot shorten its vectors.", param="dimensions")
        items: list[list[int]] = [[ord(c) for c in text] for text in request.texts] or request.token_ids
        vectors = [[float(len(item)), float(item[0]), 0.5] for item in items]
        return EmbedResult(vectors=vectors, prompt_tokens=sum(len(item) for item in items))
