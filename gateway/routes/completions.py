from __future__ import annotations

from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from gateway.observability import request_log
from gateway.protocol.completions import Completion, CompletionRequest
from gateway.protocol.errors import error_responses
from gateway.routes.chat import SSE_HEADERS
from gateway.routes.services import Completions

COMPLETION = ResponseSpec(
    Completion,
    description="A text completion; with `stream: true`, server-sent events of `text_completion` objects ending "
    "with `data: [DONE]`",
    generate_examples=False,
)


@post(
    "/v1/completions",
    status_code=200,
    summary="Create a completion (the legacy text completions API)",
    responses={200: COMPLETION, **error_responses(404, 413, 503)},
)
async def create_completion(data: CompletionRequest, request: Request, completions: Completions, owner: str) -> Response:
    result = await completions.create(data, request_log(request), owner=owner)
    if isinstance(result, Completion):
        return Response(result)
    return Stream(result, media_type="text/event-stream", headers=SSE_HEADERS)
