"""ChatEngine: one vLLM `AsyncLLM` that renders chat prompts with the model's own template, checks them
against the context, and streams per-choice deltas. It knows nothing of HTTP or Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
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
from engines.metrics import RequestLoad
from engines.protocol import (
    ChoiceDelta,
    GenerateChunk,
    GenerateRequest,
    PromptEcho,
    SamplingOptions,
    TokenizeRequest,
    TokenizeResult,
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
        cache = llm.vllm_config.cache_config
        self.load = RequestLoad(cache.block_size, cache.num_gpu_blocks or 0) if config.metrics else None
        """The requests' load, where `config.metrics` keeps it."""
        self.tokenizer = llm.get_tokenizer()
        self.running = 0
        self.aborted = 0

    @classmethod
    def start(cls, config: EngineConfig) -> ChatEngine:
        # The OpenAI-server context gives the batch defaults vLLM's own server uses (on CPU: 2048 tokens).
        llm = AsyncLLM.from_engine_args(engine_args(config), usage_context=UsageContext.OPENAI_API_SERVER)
        return cls(config, llm)

    def render_prompt(self, request: GenerateRequest) -> list[int]:
        if isinstance(request.prompt, list):
            self._check_token_ids(request.prompt, "prompt")
            return request.prompt
        if request.prompt is not None:
            # An empty prompt starts from the beginning of a document, as OpenAI's do.
            return list(self.tokenizer.encode(request.prompt)) or [
                self.tokenizer.bos_token_id or self.tokenizer.eos_token_id
            ]
        return self._render_messages(request.messages, request.tools)

    def _render_messages(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
    ) -> list[int]:
        try:
            ids = self.tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=continue_final_message,
                tokenize=True,
                return_dict=False,
            )
        except Exception as exc:  # a template can reject a conversation (roles out of order, ...)
            raise InvalidRequestError(f"The messages could not be rendered: {exc}", param="messages") from None
        return list(ids)

    def tokenize(self, request: TokenizeRequest) -> TokenizeResult:
        if request.messages is not None:
            if request.add_generation_prompt and request.continue_final_message:
                raise InvalidRequestError(
                    "'add_generation_prompt' and 'continue_final_message' cannot both be true.",
                    param="continue_final_message",
                )
            ids = self._render_messages(
                request.messages,
                request.tools,
                add_generation_prompt=request.add_generation_prompt,
                continue_final_message=request.continue_final_message,
            )
        else:
            ids = list(self.tokenizer.encode(request.prompt or "", add_special_tokens=request.add_special_tokens))
        strs = list(self.tokenizer.convert_ids_to_tokens(ids)) if request.return_token_strs else None
        return TokenizeResult(tokens=ids, token_strs=strs, max_model_len=self.config.max_model_len)

    def detokenize(self, tokens: list[int]) -> str:
        self._check_token_ids(tokens, "tokens")
        return self.tokenizer.decode(tokens)

    def tokenizer_info(self) -> dict[str, Any]:
        """The tokenizer's configuration as vLLM's /tokenizer_info gives it (tokenizer_config.json's fields)."""
        config = {
            key: value.content if hasattr(value, "content") else value
            for key, value in (getattr(self.tokenizer, "init_kwargs", None) or {}).items()
            if key not in ("vocab_file", "merges_file", "tokenizer_file", "name_or_path")
        }
        info = msgspec.to_builtins(config, enc_hook=str)
        info["tokenizer_class"] = type(self.tokenizer).__name__
        if getattr(self.tokenizer, "chat_template", None):
            info["chat_template"] = self.tokenizer.chat_template
        return info

    def _check_token_ids(self, tokens: list[int], param: str) -> None:
        vocabulary = len(self.tokenizer)
        if any(not 0 <= token < vocabulary for token in tokens):
            raise InvalidRequestError(f"Invalid '{param}': token ids must be between 0 and {vocabulary - 1}.", param=param)

    def sampling_params(self, options: SamplingOptions, prompt_tokens: int, *, source: str = "messages") -> SamplingParams:
        """`source` names what the prompt came from (`messages` or `prompt`) in context-length errors."""
        limit = self.config.max_model_len
        if prompt_tokens >= limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, your {source} "
                f"resulted in {prompt_tokens} tokens. Please reduce the length of the {source}.",
                param=source,
                code="context_length_exceeded",
            )
        max_tokens = options.max_tokens if options.max_tokens is not None else limit - prompt_tokens
        if prompt_tokens + max_tokens > limit:
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {source}, {max_tokens} in "
                f"the completion). Please reduce the length of the {source} or completion.",
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
                # An echo of the prompt alone (max_tokens 0) still runs one step, whose token is dropped.
                max_tokens=max(max_tokens, 1),
                temperature=1.0 if greedy_fan_out else options.temperature,
                top_k=1 if greedy_fan_out else 0,
                top_p=options.top_p,
                stop=options.stop or None,
                seed=options.seed,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                logit_bias=options.logit_bias,
                logprobs=options.logprobs,
                prompt_logprobs=options.prompt_logprobs,
                ignore_eos=options.ignore_eos,
                structured_outputs=structured,
                output_kind=RequestOutputKind.DELTA,
            )
        except (ValueError, VLLMClientError) as exc:
            raise InvalidRequestError(str(exc)) from None

    async def generate(self, request: GenerateRequest, lora: LoRARequest | None = None) -> AsyncIterator[GenerateChunk]:
        prompt_ids = self.render_prompt(request)
        source = "messages" if request.prompt is None else "prompt"
        params = self.sampling_params(request.sampling, len(prompt_ids), source=source)
        prompt = TokensPrompt(prompt_token_ids=prompt_ids)
        prompt_only = request.sampling.max_tokens == 0
        echo = self._echo(request, prompt_ids) if request.echo else None
        self.running += 1
        held = self.load.entered(request.request_id, len(prompt_ids)) if self.load is not None else [0, 0]
        try:
            async for output in self.llm.generate(prompt, params, request.request_id, lora_request=lora):
                if echo is not None and request.sampling.prompt_logprobs is not None and output.prompt_logprobs:
                    tokens, logprobs = self._prompt_logprobs(prompt_ids, output.prompt_logprobs, request.sampling)
                    echo = msgspec.structs.replace(echo, tokens=tokens, logprobs=logprobs)
                if prompt_only:
                    choices = [
                        ChoiceDelta(index=choice.index, text="", tokens=0, finish_reason="length")
                        for choice in output.outputs
                        if choice.finish_reason is not None
                    ]
                else:
                    choices = [self._delta(choice, request.sampling.logprobs) for choice in output.outputs]
                held[0] += sum(choice.tokens for choice in choices)
                held[1] = 1
                yield GenerateChunk(prompt_tokens=len(prompt_ids), choices=choices, prompt=echo)
                echo = None
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
            if self.load is not None:
                self.load.left(request.request_id)

    def _echo(self, request: GenerateRequest, prompt_ids: list[int]) -> PromptEcho:
        text = request.prompt if isinstance(request.prompt, str) else self.tokenizer.decode(prompt_ids)
        return PromptEcho(text=text)

    def _prompt_logprobs(
        self, prompt_ids: list[int], entries: list[Any], sampling: SamplingOptions
    ) -> tuple[list[str], list[TokenLogprob | None]]:
        """Each prompt token's text, and its logprob with the most likely alternatives; vLLM gives None for the
        first token (nothing precedes it)."""
        wanted = sampling.prompt_logprobs or 0
        tokens, logprobs = [], []
        for position, token_id in enumerate(prompt_ids):
            candidates = entries[position] if position < len(entries) else None
            entry = None if candidates is None else self._token_logprob(token_id, candidates, wanted)
            tokens.append(entry.token if entry is not None else self._token_text(None, token_id))
            logprobs.append(entry)
        return tokens, logprobs

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
        return [
            self._token_logprob(token_id, candidates, wanted)
            for token_id, candidates in zip(choice.token_ids, choice.logprobs or [], strict=False)
        ]

    def _token_logprob(self, token_id: int, candidates: dict[int, Any], wanted: int) -> TokenLogprob:
        sampled = candidates[token_id]
        top = sorted((c for c in candidates.values() if c.rank is not None and c.rank <= wanted), key=lambda c: c.rank)
        return TokenLogprob(
            token=self._token_text(sampled.decoded_token, token_id),
            logprob=_finite(sampled.logprob),
            top=[TopLogprob(self._token_text(c.decoded_token, None), _finite(c.logprob)) for c in top],
        )

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
