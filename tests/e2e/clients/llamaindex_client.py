"""Run by tests/e2e/clients/test_llamaindex.py in `.venv-clients` (LlamaIndex pins an older openai SDK than the
project's): LlamaIndex's `OpenAILike` with its defaults (the text completions API), as a chat model, and
`OpenAIEmbedding` in a small RAG pipeline. Prints what it got as JSON."""

from __future__ import annotations

import json
import sys

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai_like import OpenAILike


def main(api_base: str, model: str, embedding_model: str) -> dict[str, object]:
    llm = OpenAILike(model=model, api_base=api_base, api_key="unused", max_tokens=12, temperature=0)
    completed = llm.complete("The capital of France is")
    streamed = "".join(part.delta or "" for part in llm.stream_complete("The capital of France is"))
    chat = OpenAILike(model=model, api_base=api_base, api_key="unused", is_chat_model=True, max_tokens=24, temperature=0)
    answer = chat.chat([ChatMessage(role="user", content="What is the capital of France?")])
    embed = OpenAIEmbedding(model_name=embedding_model, api_base=api_base, api_key="unused")
    documents = [
        Document(text="The platform's mascot is a blue heron named Ada.", doc_id="mascot"),
        Document(text="Invoices are due thirty days after they are issued.", doc_id="invoices"),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    retrieved = index.as_retriever(similarity_top_k=1).retrieve("What is the mascot called?")
    rag = index.as_query_engine(llm=chat, similarity_top_k=1).query("What is the name of the platform's mascot?")
    return {
        "completion": completed.text,
        "streamed": streamed,
        "chat": answer.message.content,
        "dimensions": len(embed.get_query_embedding("hello")),
        "retrieved": retrieved[0].node.ref_doc_id,
        "rag": str(rag),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
