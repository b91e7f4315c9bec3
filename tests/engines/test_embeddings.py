"""The embedding model with the real all-MiniLM-L6-v2: vectors as sentence-transformers makes them, and its rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.core.errors import InvalidRequestError
from engines.core.settings import DEFAULT_EMBEDDING_MODEL_ID
from engines.embeddings import Embedder, EmbeddingModelError, EmbedRequest, max_tokens_of, resolve_embedding_model

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "a",
    "Résumé, naïve café ✓ 日本語",
    "Fine-tuning makes a model answer in the house style.",
] * 9  # 45 inputs: more than one batch, of mixed lengths


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    path = resolve_embedding_model(DEFAULT_EMBEDDING_MODEL_ID)
    assert path is not None
    return Embedder(DEFAULT_EMBEDDING_MODEL_ID, path, threads=2)


def cosines(a: list[list[float]], b: object) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(torch.tensor(a), torch.as_tensor(b), dim=1)


def test_vectors_match_sentence_transformers(embedder: Embedder) -> None:
    result = embedder.embed(EmbedRequest(texts=TEXTS))
    reference = embedder.model.encode(TEXTS, convert_to_tensor=True)
    assert len(result.vectors) == len(TEXTS) and len(result.vectors[0]) == 384
    assert cosines(result.vectors, reference).min().item() > 1 - 1e-4
    tokens = embedder.model.tokenizer(TEXTS)["input_ids"]
    assert result.prompt_tokens == sum(len(ids) for ids in tokens)


def test_token_ids_embed_like_their_text(embedder: Embedder) -> None:
    ids = embedder.model.tokenizer(TEXTS[:3])["input_ids"]
    by_ids = embedder.embed(EmbedRequest(token_ids=ids))
    by_text = embedder.embed(EmbedRequest(texts=TEXTS[:3]))
    assert cosines(by_ids.vectors, by_text.vectors).min().item() > 1 - 1e-6


def test_too_long_an_input_is_refused_unless_truncation_is_asked(embedder: Embedder) -> None:
    long = "word " * 300
    with pytest.raises(InvalidRequestError, match="maximum context length is 256 tokens") as refused:
        embedder.embed(EmbedRequest(texts=["short", long]))
    assert refused.value.param == "input" and "input[1]" in refused.value.message
    truncated = embedder.embed(EmbedRequest(texts=[long], truncate=True))
    assert truncated.prompt_tokens == 256
    assert cosines(truncated.vectors, embedder.model.encode([long])).item() > 1 - 1e-4


def test_dimensions_other_than_the_models_and_unknown_token_ids_are_refused(embedder: Embedder) -> None:
    assert len(embedder.embed(EmbedRequest(texts=["a"], dimensions=384)).vectors[0]) == 384
    with pytest.raises(InvalidRequestError) as shorter:
        embedder.embed(EmbedRequest(texts=["a"], dimensions=128))
    assert shorter.value.param == "dimensions"
    with pytest.raises(InvalidRequestError, match="vocabulary"):
        embedder.embed(EmbedRequest(token_ids=[[101, 10**6]]))


def test_the_setting_names_the_embedded_model_a_directory_or_none(tmp_path: Path) -> None:
    embedded = resolve_embedding_model(DEFAULT_EMBEDDING_MODEL_ID)
    assert embedded is not None and max_tokens_of(embedded) == 256
    assert resolve_embedding_model("none") is None and resolve_embedding_model("") is None
    with pytest.raises(EmbeddingModelError, match="not a sentence-transformers model directory"):
        resolve_embedding_model(str(tmp_path))
    assert resolve_embedding_model(embedded) == embedded
