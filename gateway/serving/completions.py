"""CompletionService: the legacy text completions API. Each prompt is one engine request (all in flight
together); choices are numbered prompt by prompt, `n` per prompt, as OpenAI numbers them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from engines.adapters import Adapter
from engines.core.errors import InvalidRequestError
from engines.protocol import GenerateChunk, GenerateRequest, PromptEcho, SamplingOptions, TokenLogprob
from gateway.engine_client import EngineClient
from gateway.limits import Limiter
from gateway.observability import RequestLog
from gateway.protocol.chat import Usage
from gateway.protocol.completions import Completion, CompletionChoice, CompletionFinishReason, CompletionLogprobs
from gateway.protocol.completions import CompletionRequest as Body
from gateway.serving.chat_request import shared_sampling
from gateway.serving.models import ModelCatalog
from gateway.serving.streaming import TokenBudget, sse


class CompletionPlan(msgspec.Struct, frozen=True, kw_only=True):
    requests: list[GenerateRequest]
    """One per prompt."""
    model: str
    n: int
    stream: bool
    include_usage: bool
    echo: bool
    logprobs: bool


def plan_completion(body: Body, *, request_id: str, adapter: Adapter | None, max_n: int) -> CompletionPlan:
    n = body.n or 1
    prompts = _prompts(body.prompt)
    if n * len(prompts) > max_n:
        raise InvalidRequestError(
            f"Invalid 'n': at most {max_n} choices can be requested (n times the prompts).", param="n", code="invalid_value"
        )
    if body.best_of is not None and body.best_of != n:
        if body.best_of < n:
            raise InvalidRequestError("'best_of' must be greater than or equal to 'n'.", param="best_of")
        raise InvalidRequestError(
            "'best_of' greater than 'n' is not supported: request n choices and pick among them.", param="best_of"
        )
    if body.suffix:
        raise InvalidRequestError("'suffix' is not supported by this model.", param="suffix")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    max_tokens = 16 if body.max_tokens is None else body.max_tokens
    if max_tokens == 0 and not body.echo:
        raise InvalidRequestError(
            "'max_tokens' of 0 asks for no completion, which is only useful with 'echo'.", param="max_tokens"
        )
    sampling = SamplingOptions(
        **shared_sampling(body),
        max_tokens=max_tokens,
        n=n,
        logprobs=body.logprobs,
        prompt_logprobs=body.logprobs if body.echo else None,
    )
    requests = [
        GenerateRequest(
            request_id=f"{request_id}-{index}", prompt=prompt, echo=bool(body.echo), sampling=sampling, adapter=adapter
        )
        for index, prompt in enumerate(prompts)
    ]
    return CompletionPlan(
        requests=requests,
        model=body.model,
        n=n,
        stream=bool(body.stream),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        echo=bool(body.echo),
        logprobs=body.logprobs is not None,
    )


def _prompts(prompt: str | list[str | int | list[int]] | None) -> list[str | list[int]]:
    if prompt is None:
        return [""]
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(item, int) for item in prompt):
        return [_token_ids(prompt, "prompt")]
    if all(isinstance(item, str) for item in prompt):
        return [item for item in prompt if isinstance(item, str)]
    if all(isinstance(item, list) for item in prompt):
        return [_token_ids(item, f"prompt[{index}]") for index, item in enumerate(prompt) if isinstance(item, list)]
    raise InvalidRequestError(
        "Invalid 'prompt': expected a string, a list of strings, a list of token ids or a list of lists of token ids.",
        param="prompt",
    )


def _token_ids(ids: list, param: str) -> list[int]:
    if not ids or any(isinstance(token, bool) or not isinstance(token, int) or token < 0 for token in ids):
        raise InvalidRequestError(f"Invalid '{param}': token ids must be a non-empty list of integers >= 0.", param=param)
    return ids


class CompletionService:
    def __init__(self, engine: EngineClient, models: ModelCatalog, *, max_n: int, limiter: Limiter | None = None) -> None:
        self.engine = engine
        self.models = models
        self.max_n = max_n
        self.limiter = limiter

    async def create(self, body: Body, log: RequestLog, *, owner: str) -> Completion | AsyncIterator[bytes]:
        """A completion object, or for `stream: true` an iterator of SSE bytes. Every prompt's first chunk is
        awaited here, so errors before any token are answered with a proper status, not inside a 200 stream."""
        log.model = body.model
        adapter = await self.models.resolve(body.model, owner)
        log.served(self.models.base.id, adapter.name if adapter else None)
        plan = plan_completion(body, request_id=log.request_id, adapter=adapter, max_n=self.max_n)
        budget = TokenBudget(self.limiter, owner)
        await budget.admit((plan.requests[0].sampling.max_tokens or 0) * plan.n * len(plan.requests))
        streams = [aiter(self.engine.generate(request)) for request in plan.requests]
        try:
            firsts = await asyncio.gather(*(anext(stream, None) for stream in streams))
        except BaseException:
            await asyncio.gather(
                *(stream.aclose() for stream in streams if hasattr(stream, "aclose")), return_exceptions=True
            )
            raise
        log.first_token_at = time.monotonic()
        run = _Run(plan, log, budget)
        merged = _merge(firsts, streams)
        if plan.stream:
            return run.sse(merged)
        return await run.completion(merged)


async def _merge(
    firsts: list[GenerateChunk | None], streams: list[AsyncIterator[GenerateChunk]]
) -> AsyncIterator[tuple[int, GenerateChunk]]:
    """(prompt index, chunk) from every prompt's stream as they come; the first chunks first."""
    for index, first in enumerate(firsts):
        if first is not None:
            yield index, first
    live = [index for index, first in enumerate(firsts) if first is not None]
    if len(live) == 1:
        async for chunk in streams[live[0]]:
            yield live[0], chunk
        return
    queue: asyncio.Queue[tuple[int, GenerateChunk | BaseException | None]] = asyncio.Queue()

    async def pump(index: int) -> None:
        try:
            async for chunk in streams[index]:
                await queue.put((index, chunk))
        except Exception as exc:
            await queue.put((index, exc))
            return
        await queue.put((index, None))

    tasks = [asyncio.create_task(pump(index)) for index in live]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class _Choice:
    """One choice's text and legacy logprobs as they accumulate; `offset` counts the characters of the tokens
    whose logprobs were sent so far."""

    text: list[str] = field(default_factory=list)
    tokens: int = 0
    offset: int = 0
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None

    def add(self, text: str, logprobs: CompletionLogprobs | None) -> None:
        self.text.append(text)
        if logprobs is None:
            return
        if self.logprobs is None:
            self.logprobs = CompletionLogprobs(text_offset=[], token_logprobs=[], tokens=[], top_logprobs=[])
        self.logprobs.text_offset.extend(logprobs.text_offset)
        self.logprobs.token_logprobs.extend(logprobs.token_logprobs)
        self.logprobs.tokens.extend(logprobs.tokens)
        self.logprobs.top_logprobs.extend(logprobs.top_logprobs)

    def legacy(self, tokens: list[str], entries: list[TokenLogprob | None]) -> CompletionLogprobs:
        """The legacy shape of `entries`, their text offsets continuing this choice's text."""
        offsets = []
        for token in tokens:
            offsets.append(self.offset)
            self.offset += len(token)
        return CompletionLogprobs(
            text_offset=offsets,
            token_logprobs=[entry.logprob if entry is not None else None for entry in entries],
            tokens=tokens,
            top_logprobs=[_top(entry) if entry is not None else None for entry in entries],
        )


def _top(entry: TokenLogprob) -> dict[str, float]:
    """The sampled token and the most likely alternatives, as OpenAI's legacy `top_logprobs` has them."""
    return {entry.token: entry.logprob, **{top.token: top.logprob for top in entry.top}}


class _Run:
    """One request's accumulation of every prompt's chunks into choices and usage."""

    def __init__(self, plan: CompletionPlan, log: RequestLog, budget: TokenBudget) -> None:
        self.plan = plan
        self.log = log
        self.budget = budget
        self.id = f"cmpl-{log.request_id}"
        self.created = int(time.time())
        self.choices = {index: _Choice() for index in range(plan.n * len(plan.requests))}
        self.prompt_tokens = [0] * len(plan.requests)

    def absorb(self, prompt_index: int, chunk: GenerateChunk) -> list[CompletionChoice]:
        """Adds a chunk to its choices; returns what it added, as stream choices."""
        self.prompt_tokens[prompt_index] = chunk.prompt_tokens
        added = []
        if chunk.prompt is not None:
            for choice_index in range(self.plan.n):
                added.append(self._echo(prompt_index * self.plan.n + choice_index, chunk.prompt))
        for delta in chunk.choices:
            index = prompt_index * self.plan.n + delta.index
            state = self.choices[index]
            logprobs = None
            if self.plan.logprobs and delta.logprobs is not None:
                logprobs = state.legacy([entry.token for entry in delta.logprobs], list(delta.logprobs))
            state.add(delta.text, logprobs)
            state.tokens += delta.tokens
            if delta.finish_reason is not None:
                state.finish_reason = delta.finish_reason
                self.log.finish_reasons.append(delta.finish_reason)
            finish = _finish_reason(delta.finish_reason) if delta.finish_reason else None
            if delta.text or finish is not None or logprobs is not None:
                added.append(CompletionChoice(index=index, text=delta.text, logprobs=logprobs, finish_reason=finish))
        self.log.prompt_tokens = sum(self.prompt_tokens)
        self.log.completion_tokens = self.completion_tokens
        return added

    def _echo(self, index: int, echo: PromptEcho) -> CompletionChoice:
        state = self.choices[index]
        logprobs = None
        if self.plan.logprobs and echo.logprobs is not None:
            logprobs = state.legacy(echo.tokens, echo.logprobs)
        state.add(echo.text, logprobs)
        return CompletionChoice(index=index, text=echo.text, logprobs=logprobs, finish_reason=None)

    @property
    def completion_tokens(self) -> int:
        return sum(state.tokens for state in self.choices.values())

    def usage(self) -> Usage:
        prompt = sum(self.prompt_tokens)
        return Usage(prompt, self.completion_tokens, prompt + self.completion_tokens)

    async def completion(self, chunks: AsyncIterator[tuple[int, GenerateChunk]]) -> Completion:
        async for prompt_index, chunk in chunks:
            self.absorb(prompt_index, chunk)
        await self.budget.charge(self.usage().total_tokens)
        choices = [
            CompletionChoice(
                index=index,
                text="".join(state.text),
                logprobs=state.logprobs if self.plan.logprobs else None,
                finish_reason=_finish_reason(state.finish_reason),
            )
            for index, state in self.choices.items()
        ]
        return Completion(id=self.id, created=self.created, model=self.plan.model, choices=choices, usage=self.usage())

    def sse(self, chunks: AsyncIterator[tuple[int, GenerateChunk]]) -> AsyncIterator[bytes]:
        return sse(self.chunk_objects(chunks), self.log)

    async def chunk_objects(self, chunks: AsyncIterator[tuple[int, GenerateChunk]]) -> AsyncIterator[Completion]:
        """A chunk per engine chunk that added something, then (with include_usage) one with the usage."""
        async for prompt_index, chunk in chunks:
            if added := self.absorb(prompt_index, chunk):
                yield self._chunk(added)
        await self.budget.charge(self.usage().total_tokens)
        if self.plan.include_usage:
            yield self._chunk([], usage=self.usage())

    def _chunk(self, choices: list[CompletionChoice], usage: Usage | None = None) -> Completion:
        chunk = Completion(id=self.id, created=self.created, model=self.plan.model, choices=choices)
        # With include_usage every chunk has the field (null but on the last), as OpenAI sends it.
        return msgspec.structs.replace(chunk, usage=usage) if self.plan.include_usage else chunk


def _finish_reason(reason: str | None) -> CompletionFinishReason:
    return "length" if reason == "length" else "stop"
