from __future__ import annotations

from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from gateway.observability import request_log
from gateway.protocol.chat import ChatCompletion, ChatCompletionRequest
from gateway.protocol.errors import error_responses
from gateway.routes.services import Chat

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
COMPLETION = ResponseSpec(
    ChatCompletion,
    description="A chat completion; with `stream: true`, server-sent events of `chat.completion.chunk` objects "
    "ending with `data: [DONE]`",
    generate_examples=False,
)


@post(
    "/v1/chat/completions",
    status_code=200,
    summary="Create a chat completion",
    responses={200: COMPLETION, **error_responses(404, 413, 503)},
)
async def create_chat_completion(data: ChatCompletionRequest, request: Request, chat: Chat, owner: str) -> Response:
    result = await chat.create(data, request_log(request), owner=owner)
    if isinstance(result, ChatCompletion):
        return Response(result)
    return Stream(result, media_type="text/event-stream", headers=SSE_HEADERS)
