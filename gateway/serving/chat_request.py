"""Turns an OpenAI chat request into an engine request: validated messages in the chat template's shape,
sampling options, and the structured-output schema that forced tool choices and response formats need."""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec

from engines.adapters import Adapter
from engines.core.errors import InvalidRequestError
from engines.protocol import GenerateRequest, SamplingOptions
from gateway.protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    JSONObjectFormat,
    JSONSchemaResponseFormat,
    Message,
    NamedToolChoice,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from gateway.protocol.completions import CompletionRequest

ToolMode = Literal["none", "auto", "named", "required"]


class ChatPlan(msgspec.Struct, frozen=True, kw_only=True):
    """An engine request plus what the response builder needs to know about it."""

    engine_request: GenerateRequest
    model: str
    n: int
    stream: bool
    include_usage: bool
    tool_mode: ToolMode
    forced_tool: str | None = None


def plan_chat(body: ChatCompletionRequest, *, request_id: str, adapter: Adapter | None, max_n: int) -> ChatPlan:
    n = body.n or 1
    if n > max_n:
        raise InvalidRequestError(f"Invalid 'n': at most {max_n} choices can be requested.", param="n", code="invalid_value")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequestError(
            "'logprobs' must be set to true when 'top_logprobs' is used.", param="logprobs", code="invalid_value"
        )
    tool_mode, forced_tool, tools, schema = _plan_tools(body)
    json_object = False
    if schema is None and isinstance(body.response_format, JSONSchemaResponseFormat):
        schema = body.response_format.json_schema.schema or {"type": "object"}
    elif schema is None and isinstance(body.response_format, JSONObjectFormat):
        json_object = True
    sampling = SamplingOptions(
        **shared_sampling(body),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        n=n,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        json_schema=schema,
        json_object=json_object,
    )
    request = GenerateRequest(
        request_id=request_id,
        messages=[template_message(i, message) for i, message in enumerate(body.messages)],
        sampling=sampling,
        tools=tools,
        adapter=adapter,
    )
    return ChatPlan(
        engine_request=request,
        model=body.model,
        n=n,
        stream=bool(body.stream),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        tool_mode=tool_mode,
        forced_tool=forced_tool,
    )


def _plan_tools(
    body: ChatCompletionRequest,
) -> tuple[ToolMode, str | None, list[dict[str, Any]] | None, dict[str, Any] | None]:
    """Returns the tool mode, the forced tool's name, the tools for the template, and the output schema."""
    tools = body.tools or []
    choice = body.tool_choice
    if choice is not None and choice != "none" and not tools:
        raise InvalidRequestError(
            "'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice", code="invalid_value"
        )
    if not tools or choice == "none":
        return "none", None, None, None
    template_tools = [msgspec.to_builtins(tool) for tool in tools]
    if isinstance(choice, NamedToolChoice):
        tool = next((t for t in tools if t.function.name == choice.function.name), None)
        if tool is None:
            raise InvalidRequestError(
                f"Tool choice '{choice.function.name}' is not one of the provided tools.",
                param="tool_choice",
                code="invalid_value",
            )
        return "named", tool.function.name, template_tools, _parameters(tool.function.parameters)
    if choice == "required":
        calls = [
            {
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "parameters": _parameters(t.function.parameters)},
                "required": ["name", "parameters"],
            }
            for t in tools
        ]
        return "required", None, template_tools, {"type": "array", "minItems": 1, "items": {"anyOf": calls}}
    return "auto", None, template_tools, None


def _parameters(schema: dict[str, Any] | None) -> dict[str, Any]:
    return schema if schema else {"type": "object", "properties": {}}


def shared_sampling(body: ChatCompletionRequest | CompletionRequest) -> dict[str, Any]:
    """The sampling options chat and text completions spell alike, with OpenAI's defaults."""
    return {
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "stop": [body.stop] if isinstance(body.stop, str) else list(body.stop or []),
        "seed": body.seed,
        "presence_penalty": body.presence_penalty or 0.0,
        "frequency_penalty": body.frequency_penalty or 0.0,
        "logit_bias": logit_bias(body.logit_bias),
        "ignore_eos": body.ignore_eos,
    }


def logit_bias(bias: dict[str, float] | None) -> dict[int, float] | None:
    if not bias:
        return None
    try:
        return {int(token): value for token, value in bias.items()}
    except ValueError:
        raise InvalidRequestError(
            "Invalid 'logit_bias': keys must be token ids (integers as strings).",
            param="logit_bias",
            code="invalid_value",
        ) from None


def template_message(index: int, message: Message) -> dict[str, Any]:
    """A message as Hugging Face chat templates expect it: string content, tool calls with dict arguments."""
    if isinstance(message, SystemMessage | DeveloperMessage):
        return {"role": "system", "content": _text(index, message.content)}
    if isinstance(message, UserMessage):
        return {"role": "user", "content": _text(index, message.content)}
    if isinstance(message, ToolMessage):
        return {"role": "tool", "content": _text(index, message.content), "tool_call_id": message.tool_call_id}
    assert isinstance(message, AssistantMessage)
    rendered: dict[str, Any] = {"role": "assistant", "content": _text(index, message.content or "")}
    if message.tool_calls:
        rendered["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": _arguments(call.function.arguments)},
            }
            for call in message.tool_calls
        ]
    return rendered


def _text(index: int, content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part_index, part in enumerate(content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, RefusalPart):
            texts.append(part.refusal)
        else:
            kind = type(part).__struct_config__.tag
            raise InvalidRequestError(
                f"Invalid content part type '{kind}': this model accepts text only.",
                param=f"messages[{index}].content[{part_index}].type",
                code="invalid_value",
            )
    return "\n".join(texts)


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments
