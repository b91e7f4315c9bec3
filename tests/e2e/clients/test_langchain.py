"""LangChain's `OpenAI` LLM (the text completions API), `ChatOpenAI` and `OpenAIEmbeddings` against the real stack."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI, OpenAI, OpenAIEmbeddings
from pydantic import SecretStr

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e


def test_completions_llm(platform: Platform) -> None:
    llm = OpenAI(base_url=f"{platform.url}/v1", api_key=SecretStr("unused"), model=BASE_MODEL, max_tokens=12, temperature=0)
    text = llm.invoke("The capital of France is")
    assert isinstance(text, str) and text.strip()
    chunks = list(llm.stream("The capital of France is"))
    assert "".join(chunks) == text


def test_chat_model(platform: Platform) -> None:
    chat = ChatOpenAI(
        base_url=f"{platform.url}/v1", api_key=SecretStr("unused"), model=BASE_MODEL, max_completion_tokens=24, temperature=0
    )
    assert "Paris" in str(chat.invoke("What is the capital of France?").content)


def test_embeddings(platform: Platform) -> None:
    """`check_embedding_ctx_length=False`: otherwise LangChain sends tiktoken's token ids, which mean nothing to a
    model with another tokenizer."""
    embeddings = OpenAIEmbeddings(
        base_url=f"{platform.url}/v1",
        api_key=SecretStr("unused"),
        model="sentence-transformers/all-MiniLM-L6-v2",
        check_embedding_ctx_length=False,
    )
    documents = embeddings.embed_documents(["Paris is in France.", "Bananas are yellow."])
    query = embeddings.embed_query("Which country is Paris in?")
    assert len(documents) == 2 and len(query) == 384
    score = [sum(a * b for a, b in zip(query, document, strict=True)) for document in documents]
    assert score[0] > score[1]
