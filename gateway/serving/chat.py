"""ChatService: runs a chat plan on the engines and builds OpenAI's completion object or SSE chunk stream."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec

from engines.protocol import ChoiceDelta, GenerateChunk
from engines.protocol import TokenLogprob as EngineTokenLogprob
from gateway.engine_client import EngineClient
from gateway.limits import Limiter
from gateway.observability import RequestLog
from gateway.protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    FinishReason,
    FunctionCall,
    ResponseMessage,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    ToolCallFunctionDelta,
    TopLogprob,
    Usage,
)
from gateway.serving.chat_request import ChatPlan, plan_chat
from gateway.serving.models import ModelCatalog
from gateway.serving.streaming import TokenBudget, sse


@dataclass
class _ChoiceState:
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    finish_reason: str | None = None


class ChatService:
    def __init__(self, engine: EngineClient, models: ModelCatalog, *, max_n: int, limiter: Limiter | None = None) -> None:
        self.engine = engine
        self.models = models
        self.max_n = max_n
        self.limiter = limiter

    async def create(
        self, body: ChatCompletionRequest, log: RequestLog, *, owner: str
    ) -> ChatCompletion | AsyncIterator[bytes]:
        """A completion object, or for `stream: true` an iterator of SSE bytes. Errors before the first
        token raise here, so they are answered with a proper status instead of inside a 200 stream."""
        run, first, chunks = await self._start(body, log, owner)
        if run.plan.stream:
            return run.sse(first, chunks)
        return await run.completion(first, chunks)

    async def chunks(
        self, body: ChatCompletionRequest, log: RequestLog, *, owner: str
    ) -> AsyncIterator[ChatCompletionChunk]:
        """A streamed completion's chunk objects, the last one with the usage, for APIs built on chat (whatever
        `body.stream` says). Errors before the first token raise here, later ones from the iterator."""
        run, first, chunks = await self._start(body, log, owner)
        return run.chunk_objects(first, chunks)

    async def _start(
        self, body: ChatCompletionRequest, log: RequestLog, owner: str
    ) -> tuple[_Run, GenerateChunk | None, AsyncIterator[GenerateChunk]]:
        log.model = body.model
        adapter = await self.models.resolve(body.model, owner)
        log.served(self.models.base.id, adapter.name if adapter else None)
        plan = plan_chat(body, request_id=log.request_id, adapter=adapter, max_n=self.max_n)
        budget = TokenBudget(self.limiter, owner)
        await budget.admit((plan.engine_request.sampling.max_tokens or 0) * plan.n)
        chunks = aiter(self.engine.generate(plan.engine_request))
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        log.first_token_at = time.monotonic()
        return _Run(plan, log, budget), first, chunks


class _Run:
    """One request's accumulation of engine chunks into choices and usage."""

    def __init__(self, plan: ChatPlan, log: RequestLog, budget: TokenBudget) -> None:
        self.plan = plan
        self.log = log
        self.budget = budget
        self.id = f"chatcmpl-{log.request_id}"
        self.created = int(time.time())
        self.choices = {index: _ChoiceState() for index in range(plan.n)}
        self.prompt_tokens = 0

    def absorb(self, chunk: GenerateChunk) -> None:
        self.prompt_tokens = chunk.prompt_tokens
        for delta in chunk.choices:
            state = self.choices[delta.index]
            state.text.append(delta.text)
            state.tokens += delta.tokens
            if delta.logprobs is not None:
                state.logprobs = (state.logprobs or []) + _logprobs(delta.logprobs)
            if delta.finish_reason is not None:
                state.finish_reason = delta.finish_reason
                self.log.finish_reasons.append(delta.finish_reason)
        self.log.prompt_tokens = self.prompt_tokens
        self.log.completion_tokens = self.completion_tokens

    @property
    def completion_tokens(self) -> int:
        return sum(state.tokens for state in self.choices.values())

    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.prompt_tokens + self.completion_tokens)

    async def completion(self, first: GenerateChunk | None, rest: AsyncIterator[GenerateChunk]) -> ChatCompletion:
        if first is not None:
            self.absorb(first)
            async for chunk in rest:
                self.absorb(chunk)
        await self.budget.charge(self.usage().total_tokens)
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.plan.model,
            choices=[self._choice(index, state) for index, state in self.choices.items()],
            usage=self.usage(),
        )

    def _choice(self, index: int, state: _ChoiceState) -> Choice:
        text = "".join(state.text)
        finish: FinishReason = _finish_reason(state.finish_reason)
        logprobs = ChoiceLogprobs(content=state.logprobs) if state.logprobs is not None else None
        calls = self._tool_calls(text) if finish != "length" else None
        if calls is None:
            message = ResponseMessage(content=text)
        else:
            message = ResponseMessage(content=None, tool_calls=calls)
            finish = "tool_calls" if self.plan.tool_mode == "required" else finish
        return Choice(index=index, message=message, finish_reason=finish, logprobs=logprobs)

    def _tool_calls(self, text: str) -> list[ToolCall] | None:
        """Forced tool choices generate JSON through structured outputs; this turns it into tool calls."""
        if self.plan.tool_mode == "named":
            return [ToolCall(id=_call_id(), function=FunctionCall(name=self.plan.forced_tool or "", arguments=text))]
        if self.plan.tool_mode == "required":
            try:
                calls = json.loads(text)
            except ValueError:
                return None
            return [
                ToolCall(id=_call_id(), function=FunctionCall(name=call["name"], arguments=json.dumps(call["parameters"])))
                for call in calls
            ]
        return None

    async def chunk_objects(
        self, first: GenerateChunk | None, rest: AsyncIterator[GenerateChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The role, then the choices' deltas, then a chunk with no choices and the usage."""
        forced_tools = self.plan.tool_mode in ("named", "required")
        yield self._chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content="")) for i in self.choices])
        chunks = [first] if first is not None else []
        async for chunk in _chain(chunks, rest):
            self.absorb(chunk)
            out = [choice for delta in chunk.choices if (choice := self._chunk_choice(delta, forced_tools))]
            if out:
                yield self._chunk(out)
        await self.budget.charge(self.usage().total_tokens)
        yield self._chunk([], usage=self.usage())

    def sse(self, first: GenerateChunk | None, rest: AsyncIterator[GenerateChunk]) -> AsyncIterator[bytes]:
        chunks = (chunk async for chunk in self.chunk_objects(first, rest) if chunk.choices or self.plan.include_usage)
        return sse(chunks, self.log)

    def _chunk_choice(self, delta: ChoiceDelta, forced_tools: bool) -> ChunkChoice | None:
        finish = _finish_reason(delta.finish_reason) if delta.finish_reason else None
        logprobs = ChoiceLogprobs(content=_logprobs(delta.logprobs)) if delta.logprobs is not None else None
        if forced_tools:
            # Tool arguments are sent whole once the JSON is complete.
            if finish is None:
                return None
            final = self._choice(delta.index, self.choices[delta.index])
            calls = final.message.tool_calls
            if not isinstance(calls, list):
                return ChunkChoice(
                    index=delta.index,
                    delta=Delta(content="".join(self.choices[delta.index].text)),
                    finish_reason=finish,
                )
            tool_deltas = [
                ToolCallDelta(
                    index=i, id=call.id, function=ToolCallFunctionDelta(call.function.name, call.function.arguments)
                )
                for i, call in enumerate(calls)
            ]
            return ChunkChoice(index=delta.index, delta=Delta(tool_calls=tool_deltas), finish_reason=final.finish_reason)
        if not delta.text and finish is None and logprobs is None:
            return None
        return ChunkChoice(index=delta.index, delta=Delta(content=delta.text), finish_reason=finish, logprobs=logprobs)

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.plan.model, choices=choices)
        # With include_usage every chunk has the field (null but on the last), as OpenAI sends it.
        if self.plan.include_usage or usage is not None:
            chunk = msgspec.structs.replace(chunk, usage=usage)
        return chunk


async def _chain(head: list[GenerateChunk], rest: AsyncIterator[GenerateChunk]) -> AsyncIterator[GenerateChunk]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


def _finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


def _call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _logprobs(entries: list[EngineTokenLogprob]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            token=entry.token,
            logprob=entry.logprob,
            bytes=list(entry.token.encode()),
            top_logprobs=[TopLogprob(top.token, top.logprob, list(top.token.encode())) for top in entry.top],
        )
        for entry in entries
    ]
