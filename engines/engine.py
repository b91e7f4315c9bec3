"""ChatEngine: one vLLM `AsyncLLM` that renders chat prompts with the model's own template, checks them
against the context, and streams per-choice deltas. It knows nothing of HTTP or Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMClientError
from vllm.inputs import TokensPrompt
from vllm.lora.request import LoRARequest
from vllm.outputs import CompletionOutput
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
from vllm.usage.usage_lib import UsageContext
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from engines.config import EngineConfig
from engines.core.errors import InvalidRequestError
from engines.errors import EngineUnavailableError
from engines.protocol import (
    ChoiceDelta,
    GenerateChunk,
    GenerateRequest,
    SamplingOptions,
    TokenLogprob,
    TopLogprob,
)

log = structlog.get_logger("engines.engine")


def engine_args(config: EngineConfig) -> AsyncEngineArgs:
    return AsyncEngineArgs(
        model=config.model_path,
        served_model_name=config.model_id,
        dtype=config.resolved_dtype(),
        max_model_len=config.max_model_len,
        tensor_parallel_size=config.tensor_parallel_size,
        gpu_memory_utilization=config.gpu_memory_utilization,
        enforce_eager=config.enforce_eager,
        max_num_seqs=config.max_num_seqs,
        enable_lora=True,
        max_loras=config.max_loras,
        max_cpu_loras=config.max_cpu_loras,
        max_lora_rank=config.max_lora_rank,
        # Request defaults are OpenAI's, not the model's generation_config.json.
        generation_config="vllm",
        disable_log_stats=True,
    )


class ChatEngine:
    """Owns an AsyncLLM; `generate` turns a GenerateRequest into a stream of GenerateChunks."""

    def __init__(self, config: EngineConfig, llm: AsyncLLM) -> None:
        self.config = config
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.running = 0
        self.aborted = 0

    @classmethod
    def start(cls, config: EngineConfig) -> ChatEngine:
        # The OpenAI-server context gives the batch defaults vLLM's own server uses (on CPU: 2048 tokens).
        llm = AsyncLLM.from_engine_args(engine_args(config), usage_context=UsageContext.OPENAI_API_SERVER)
        return cls(config, llm)

    def render_prompt(self, request: GenerateRequest) -> list[int]:
        try:
            ids = self.tokenizer.apply_chat_template(
                request.messages,
                tools=request.tools,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        except Exception as exc:  # a template can reject a conversation (roles out of order, ...)
            raise InvalidRequestError(f"The messages could not be rendered: {exc}", param="messages") from None
        return list(ids)

    def sampling_params(self, options: SamplingOptions, prompt_tokens: int) -> SamplingParams:
        limit = self.config.max_model_len
        if prompt_tokens >= limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, your messages "
                f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        max_tokens = options.max_tokens if options.max_tokens is not None else limit - prompt_tokens
        if prompt_tokens + max_tokens > limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in "
                "the completion). Please reduce the length of the messages or completion.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        structured = None
        if options.json_schema is not None:
            structured = StructuredOutputsParams(json=options.json_schema)
        elif options.json_object:
            structured = StructuredOutputsParams(json_object=True)
        # vLLM refuses n > 1 with greedy sampling; top_k=1 samples the same greedy tokens.
        greedy_fan_out = options.n > 1 and options.temperature == 0
        try:
            return SamplingParams(
                n=options.n,
                max_tokens=max_tokens,
                temperature=1.0 if greedy_fan_out else options.temperature,
                top_k=1 if greedy_fan_out else 0,
                top_p=options.top_p,
                stop=options.stop or None,
                seed=options.seed,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                logit_bias=options.logit_bias,
                logprobs=options.logprobs,
                ignore_eos=options.ignore_eos,
                structured_outputs=structured,
                output_kind=RequestOutputKind.DELTA,
            )
        except (ValueError, VLLMClientError) as exc:
            raise InvalidRequestError(str(exc)) from None

    async def generate(self, request: GenerateRequest, lora: LoRARequest | None = None) -> AsyncIterator[GenerateChunk]:
        prompt_ids = self.render_prompt(request)
        params = self.sampling_params(request.sampling, len(prompt_ids))
        prompt = TokensPrompt(prompt_token_ids=prompt_ids)
        self.running += 1
        try:
            async for output in self.llm.generate(prompt, params, request.request_id, lora_request=lora):
                yield GenerateChunk(
                    prompt_tokens=len(prompt_ids),
                    choices=[self._delta(choice, request.sampling.logprobs) for choice in output.outputs],
                )
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted += 1
            log.info("request_aborted", request_id=request.request_id)
            raise
        except (ValueError, VLLMClientError) as exc:
            raise InvalidRequestError(str(exc)) from None
        except EngineDeadError:
            raise EngineUnavailableError("The engine stopped; the request can be retried.") from None
        finally:
            self.running -= 1

    def _delta(self, choice: CompletionOutput, top_logprobs: int | None) -> ChoiceDelta:
        logprobs = None
        if top_logprobs is not None and choice.logprobs is not None:
            logprobs = self._logprobs(choice, top_logprobs)
        return ChoiceDelta(
            index=choice.index,
            text=choice.text,
            tokens=len(choice.token_ids),
            logprobs=logprobs,
            finish_reason=choice.finish_reason,
        )

    def _logprobs(self, choice: CompletionOutput, wanted: int) -> list[TokenLogprob]:
        entries = []
        for token_id, candidates in zip(choice.token_ids, choice.logprobs or [], strict=False):
            sampled = candidates[token_id]
            top = sorted(
                (c for c in candidates.values() if c.rank is not None and c.rank <= wanted),
                key=lambda c: c.rank,
            )
            entries.append(
                TokenLogprob(
                    token=self._token_text(sampled.decoded_token, token_id),
                    logprob=_finite(sampled.logprob),
                    top=[TopLogprob(self._token_text(c.decoded_token, None), _finite(c.logprob)) for c in top],
                )
            )
        return entries

    def _token_text(self, decoded: str | None, token_id: int | None) -> str:
        if decoded is not None:
            return decoded
        return self.tokenizer.decode([token_id]) if token_id is not None else ""

    async def check_health(self) -> None:
        await self.llm.check_health()

    def shutdown(self) -> None:
        self.llm.shutdown()


def _finite(value: float) -> float:
    """JSON has no -inf; OpenAI reports impossible tokens as -9999.0."""
    return value if value > -9999.0 else -9999.0
