"""ResponseService: OpenAI's Responses API, stateless, built on chat. A request becomes a chat request (input
items as messages, instructions as the system message, function tools, `text.format` as the response format);
the chat completion or its chunks become a response object or the Responses API's stream of typed events."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from engines.core.errors import InvalidRequestError
from gateway.errors import as_platform_error
from gateway.observability import RequestLog
from gateway.protocol.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ToolCall
from gateway.protocol.responses import (
    FunctionCall,
    IncompleteDetails,
    OutputItem,
    OutputMessage,
    OutputText,
    Response,
    ResponseError,
    ResponseRequest,
    ResponseUsage,
)
from gateway.serving.chat import ChatService

_encoder = msgspec.json.Encoder()
TEXT_PARTS = ("input_text", "output_text", "text")


def chat_request(body: ResponseRequest) -> ChatCompletionRequest:
    if body.store:
        raise InvalidRequestError(
            "'store': true is not supported yet: responses are not stored, so send store false (or leave it out).",
            param="store",
        )
    if body.previous_response_id is not None:
        raise InvalidRequestError(
            "'previous_response_id' is not supported yet: responses are not stored; send the conversation in 'input'.",
            param="previous_response_id",
        )
    messages: list[dict[str, Any]] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    items = [{"role": "user", "content": body.input}] if isinstance(body.input, str) else body.input
    for index, item in enumerate(items):
        _add_item(messages, index, item)
    request: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "user": body.user,
        "stream": body.stream,
    }
    if body.tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict},
            }
            for t in body.tools
        ]
    if body.tool_choice is not None:
        choice = body.tool_choice
        request["tool_choice"] = (
            choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice.name}}
        )
    text_format = body.text.format if body.text is not None else None
    if text_format is not None and text_format.type == "json_schema":
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": text_format.name or "response",
                "schema": text_format.schema,
                "strict": text_format.strict,
            },
        }
    elif text_format is not None and text_format.type == "json_object":
        request["response_format"] = {"type": "json_object"}
    try:
        return msgspec.convert(request, ChatCompletionRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"Invalid request: {exc}") from None


def _add_item(messages: list[dict[str, Any]], index: int, item: dict[str, Any]) -> None:
    """One input item as chat messages; consecutive function calls become one assistant message."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequestError(f"Invalid 'input[{index}].role': {role!r}.", param=f"input[{index}].role")
        messages.append({"role": role, "content": _text(index, item.get("content"))})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
        }
        previous = messages[-1] if messages else None
        if previous is not None and previous["role"] == "assistant" and previous.get("tool_calls"):
            previous["tool_calls"].append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        messages.append(
            {
                "role": "tool",
                "tool_call_id": item.get("call_id"),
                "content": output if isinstance(output, str) else _text(index, output),
            }
        )
    elif kind != "reasoning":  # a reasoning model's notes: nothing this model can use
        raise InvalidRequestError(
            f"Invalid 'input[{index}].type' {kind!r}: expected a message, a function call or its output.",
            param=f"input[{index}].type",
        )


def _text(index: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"Invalid 'input[{index}].content'.", param=f"input[{index}].content")
    texts = []
    for part_index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            texts.append(part.get("text", ""))
        elif kind == "refusal":
            texts.append(part.get("refusal", ""))
        else:
            raise InvalidRequestError(
                f"Invalid content part type {kind!r}: this model accepts text only.",
                param=f"input[{index}].content[{part_index}].type",
            )
    return "\n".join(texts)


class ResponseService:
    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    async def create(self, body: ResponseRequest, log: RequestLog, *, owner: str) -> Response | AsyncIterator[bytes]:
        request = chat_request(body)
        shell = _Shell(body, log.request_id)
        if not body.stream:
            completion = await self.chat.create(request, log, owner=owner)
            assert isinstance(completion, ChatCompletion)
            return shell.from_completion(completion)
        chunks = await self.chat.chunks(request, log, owner=owner)
        return _Stream(shell, log).events(chunks)


class _Shell:
    """What every response of one request shares: its id, time and the request's settings."""

    def __init__(self, body: ResponseRequest, request_id: str) -> None:
        self.body = body
        self.id = f"resp_{request_id}"
        self.message_id = f"msg_{request_id}"
        self.created_at = int(time.time())

    def response(self, status: Any, output: list[OutputItem], **extra: Any) -> Response:
        body = self.body
        settings: dict[str, Any] = {
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "tools": body.tools or [],
            "tool_choice": body.tool_choice or "auto",
            "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
            "metadata": body.metadata or {},
            "user": body.user,
        }
        if body.text is not None:
            settings["text"] = body.text
        return Response(
            id=self.id, created_at=self.created_at, status=status, model=body.model, output=output, **settings, **extra
        )

    def from_completion(self, completion: ChatCompletion) -> Response:
        choice = completion.choices[0]
        output: list[OutputItem] = []
        if choice.message.content:
            output.append(self.message(choice.message.content, "completed"))
        calls = choice.message.tool_calls
        if isinstance(calls, list):
            output += [function_call(call) for call in calls]
        return self.finished(
            output, choice.finish_reason, completion.usage.prompt_tokens, completion.usage.completion_tokens
        )

    def message(self, text: str, status: Any) -> OutputMessage:
        return OutputMessage(id=self.message_id, content=[OutputText(text=text)], status=status)

    def finished(self, output: list[OutputItem], finish_reason: str, input_tokens: int, output_tokens: int) -> Response:
        usage = ResponseUsage(
            input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
        )
        if finish_reason == "length":
            return self.response(
                "incomplete", output, usage=usage, incomplete_details=IncompleteDetails("max_output_tokens")
            )
        return self.response("completed", output, usage=usage)


def function_call(call: ToolCall) -> FunctionCall:
    return FunctionCall(
        id=f"fc_{secrets.token_hex(12)}",
        call_id=call.id,
        name=call.function.name,
        arguments=call.function.arguments,
        status="completed",
    )


class _Stream:
    """Chat chunks as the Responses API's events: created, in_progress, the message's item, part and text
    deltas, each function call's item and arguments, then completed (or incomplete), each numbered."""

    def __init__(self, shell: _Shell, log: RequestLog) -> None:
        self.shell = shell
        self.log = log
        self.sequence = 0
        self.text: list[str] | None = None
        self.output: list[OutputItem] = []
        self.finish_reason = "stop"
        self.usage = (0, 0)

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"

    async def events(self, chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[bytes]:
        started = self.shell.response("in_progress", [])
        yield self.event("response.created", response=started)
        yield self.event("response.in_progress", response=started)
        try:
            async for chunk in chunks:
                for piece in self.absorb(chunk):
                    yield piece
        except Exception as exc:
            error = as_platform_error(exc)
            self.log.status = error.status_code
            yield self.event("error", code=error.code or error.error_type, message=error.message, param=error.param)
            failed = self.shell.response(
                "failed", self.output, error=ResponseError(error.code or error.error_type, error.message)
            )
            yield self.event("response.failed", response=failed)
            return
        for piece in self.close_message("completed"):
            yield piece
        final = self.shell.finished(self.output, self.finish_reason, *self.usage)
        yield self.event(f"response.{final.status}", response=final)

    def absorb(self, chunk: ChatCompletionChunk) -> list[bytes]:
        if chunk.usage:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        pieces: list[bytes] = []
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
            content = choice.delta.content
            if isinstance(content, str) and content:
                pieces += self.text_delta(content)
            calls = choice.delta.tool_calls
            if isinstance(calls, list):
                pieces += self.close_message("completed")
                for call in calls:
                    pieces += self.function_call(call.id, call.function.name, call.function.arguments)
        return pieces

    def text_delta(self, delta: str) -> list[bytes]:
        pieces = []
        index = len(self.output)
        part = {"item_id": self.shell.message_id, "output_index": index, "content_index": 0}
        if self.text is None:
            self.text = []
            item = OutputMessage(id=self.shell.message_id, content=[], status="in_progress")
            pieces.append(self.event("response.output_item.added", output_index=index, item=item))
            pieces.append(self.event("response.content_part.added", **part, part=OutputText(text="")))
        self.text.append(delta)
        pieces.append(self.event("response.output_text.delta", **part, delta=delta, logprobs=[]))
        return pieces

    def close_message(self, status: str) -> list[bytes]:
        if self.text is None:
            return []
        text, index = "".join(self.text), len(self.output)
        item = self.shell.message(text, status)
        self.output.append(item)
        self.text = None
        ids = {"item_id": item.id, "output_index": index, "content_index": 0}
        return [
            self.event("response.output_text.done", **ids, text=text, logprobs=[]),
            self.event("response.content_part.done", **ids, part=item.content[0]),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def function_call(self, call_id: str, name: str, arguments: str) -> list[bytes]:
        index = len(self.output)
        done = FunctionCall(
            id=f"fc_{secrets.token_hex(12)}", call_id=call_id, name=name, arguments=arguments, status="completed"
        )
        started = msgspec.structs.replace(done, arguments="", status="in_progress")
        self.output.append(done)
        return [
            self.event("response.output_item.added", output_index=index, item=started),
            self.event("response.function_call_arguments.delta", item_id=done.id, output_index=index, delta=arguments),
            self.event(
                "response.function_call_arguments.done", item_id=done.id, output_index=index, name=name, arguments=arguments
            ),
            self.event("response.output_item.done", output_index=index, item=done),
        ]
