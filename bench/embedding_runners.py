"""Which runner serves the embedding model best on these CPUs: sentence-transformers with torch, or vLLM's pooling
runner. Each loads the embedded all-MiniLM-L6-v2 in a fresh process (start-up counts the imports), then embeds one
text and a batch of 64, five times each (the median is reported); the vectors are compared with cosine similarity.

`python -m bench.embedding_runners` (with the project's venv; about a minute)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

TEXTS = [f"The quick brown fox number {i} jumps over the lazy dog while it rains in a city far away." for i in range(64)]
REPEATS = 5
RESULT = "result: "  # vLLM writes to stdout too


def _timed(embed: object) -> dict[str, float]:
    assert callable(embed)
    result = {}
    for size in (1, 64):
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            embed(TEXTS[:size])
            times.append(time.perf_counter() - start)
        result[f"batch_{size}_ms"] = round(statistics.median(times) * 1000, 1)
    return result


def sentence_transformers() -> dict[str, object]:
    start = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    from engines.embeddings import embedded_model_path

    model = SentenceTransformer(str(embedded_model_path()), device="cpu")
    loaded = time.perf_counter() - start
    return {"start_s": round(loaded, 1), **_timed(model.encode), "vectors": model.encode(TEXTS[:4]).tolist()}


def vllm_pooling() -> dict[str, object]:
    start = time.perf_counter()
    from vllm import LLM

    from engines.embeddings import embedded_model_path

    llm = LLM(model=str(embedded_model_path()), runner="pooling", max_model_len=256, enforce_eager=True)
    loaded = time.perf_counter() - start

    def embed(texts: list[str]) -> list[list[float]]:
        return [output.outputs.embedding for output in llm.embed(texts, use_tqdm=False)]

    return {"start_s": round(loaded, 1), **_timed(embed), "vectors": embed(TEXTS[:4])}


def _run(runner: str) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.embedding_runners", runner], capture_output=True, text=True, env=env, check=True
    )
    line = next(line for line in reversed(done.stdout.splitlines()) if line.startswith(RESULT))
    return json.loads(line.removeprefix(RESULT))


def main() -> None:
    import numpy as np

    results = {runner: _run(runner) for runner in ("sentence_transformers", "vllm_pooling")}
    a, b = (np.asarray(results[runner].pop("vectors")) for runner in results)
    cosines = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print("| runner | start-up s | 1 text ms | 64 texts ms |\n|---|---|---|---|")
    for runner, row in results.items():
        print(f"| {runner} | {row['start_s']} | {row['batch_1_ms']} | {row['batch_64_ms']} |")
    print(f"lowest cosine between the runners' vectors: {cosines.min():.7f}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        runners = {"sentence_transformers": sentence_transformers, "vllm_pooling": vllm_pooling}
        print(RESULT + json.dumps(runners[sys.argv[1]]()))
    else:
        main()
