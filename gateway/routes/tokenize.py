"""vLLM's tokenizer routes. A `model` that is given must be one the caller can use (adapters share the base
model's tokenizer)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get, post

from engines.core.errors import InvalidRequestError
from engines.protocol import TokenizeRequest as EngineTokenizeRequest
from gateway.protocol.errors import error_responses
from gateway.protocol.tokenize import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from gateway.routes.services import Engine, Models
from gateway.serving.chat_request import template_message


@post(
    "/tokenize", status_code=200, summary="Tokenize a prompt or chat messages (vLLM's route)", responses=error_responses(404)
)
async def tokenize(data: TokenizeRequest, engine: Engine, models: Models, owner: str) -> TokenizeResponse:
    if data.model is not None:
        await models.resolve(data.model, owner)
    if (data.prompt is None) == (data.messages is None):
        raise InvalidRequestError("Give exactly one of 'prompt' and 'messages'.", param="prompt")
    request = EngineTokenizeRequest(
        prompt=data.prompt,
        messages=[template_message(i, message) for i, message in enumerate(data.messages)] if data.messages else None,
        tools=[msgspec.to_builtins(tool) for tool in data.tools] if data.tools else None,
        add_special_tokens=data.prompt is not None if data.add_special_tokens is None else data.add_special_tokens,
        add_generation_prompt=data.add_generation_prompt,
        continue_final_message=data.continue_final_message,
        return_token_strs=data.return_token_strs,
    )
    result = await engine.tokenize(request)
    return TokenizeResponse(
        count=len(result.tokens), max_model_len=result.max_model_len, tokens=result.tokens, token_strs=result.token_strs
    )


@post("/detokenize", status_code=200, summary="Turn token ids back into text (vLLM's route)", responses=error_responses(404))
async def detokenize(data: DetokenizeRequest, engine: Engine, models: Models, owner: str) -> DetokenizeResponse:
    if data.model is not None:
        await models.resolve(data.model, owner)
    return DetokenizeResponse(prompt=await engine.detokenize(data.tokens))


@get("/tokenizer_info", summary="The tokenizer's configuration (vLLM's route)", responses=error_responses())
async def tokenizer_info(engine: Engine) -> dict[str, Any]:
    return await engine.tokenizer_info()
