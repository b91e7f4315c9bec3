from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.response import Stream

from gateway.auth import caller
from gateway.observability import request_log
from gateway.protocol.chat import ChatCompletion, ChatCompletionRequest
from gateway.routes.body import decode_body, json_response
from gateway.serving.chat import ChatService

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@post("/v1/chat/completions", status_code=200)
async def create_chat_completion(request: Request, state: State) -> Response:
    body = await decode_body(request, ChatCompletionRequest)
    service: ChatService = state.chat
    result = await service.create(body, request_log(request), owner=caller(request))
    if isinstance(result, ChatCompletion):
        return json_response(result)
    return Stream(result, media_type="text/event-stream", headers=SSE_HEADERS)
