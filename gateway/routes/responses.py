from __future__ import annotations

from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from gateway.observability import request_log
from gateway.protocol.errors import error_responses
from gateway.protocol.responses import Response as ResponseObject
from gateway.protocol.responses import ResponseRequest
from gateway.routes.chat import SSE_HEADERS
from gateway.routes.services import Responses

RESPONSE = ResponseSpec(
    ResponseObject,
    description="A response; with `stream: true`, server-sent events (`response.created`, "
    "`response.output_text.delta`, ..., `response.completed`), each with its `sequence_number`",
    generate_examples=False,
)


@post(
    "/v1/responses",
    status_code=200,
    summary="Create a model response (stateless: `store` and `previous_response_id` are not supported yet)",
    responses={200: RESPONSE, **error_responses(404, 413, 503)},
)
async def create_response(data: ResponseRequest, request: Request, responses: Responses, owner: str) -> Response:
    result = await responses.create(data, request_log(request), owner=owner)
    if isinstance(result, ResponseObject):
        return Response(result)
    return Stream(result, media_type="text/event-stream", headers=SSE_HEADERS)
