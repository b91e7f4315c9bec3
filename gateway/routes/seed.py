"""The seed's `POST /chat`: a prompt in, the model's answer out, over the same chat service."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from engines.core.errors import InvalidRequestError
from gateway.auth import caller
from gateway.observability import request_log
from gateway.protocol.chat import ChatCompletion, ChatCompletionRequest, UserMessage
from gateway.routes.body import decode_body, json_response
from gateway.serving.chat import ChatService


class SeedChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    prompt: Annotated[str, msgspec.Meta(min_length=1)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 256
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 0.7
    adapter: str | None = None
    """An adapter model name; never a filesystem path."""
    adapter_path: Any = None


class SeedChatResponse(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    model: str
    text: str
    finish_reason: str
    usage: dict[str, int]


@post("/chat", status_code=200)
async def seed_chat(request: Request, state: State) -> Response:
    body = await decode_body(request, SeedChatRequest)
    if body.adapter_path is not None:
        raise InvalidRequestError(
            "'adapter_path' is not accepted: name an adapter model with 'adapter' (see GET /v1/models).",
            param="adapter_path",
            code="invalid_value",
        )
    service: ChatService = state.chat
    model = body.adapter or service.models.base.id
    chat = ChatCompletionRequest(
        model=model,
        messages=[UserMessage(content=body.prompt)],
        max_tokens=body.max_tokens,
        temperature=body.temperature,
    )
    result = await service.create(chat, request_log(request), owner=caller(request))
    assert isinstance(result, ChatCompletion)
    choice = result.choices[0]
    return json_response(
        SeedChatResponse(
            id=result.id,
            model=model,
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            usage=msgspec.structs.asdict(result.usage),
        )
    )
