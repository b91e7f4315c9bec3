"""`make bench`: scenario 1 so far, the platform against vLLM's own OpenAI server on the same weights and
engine settings, streaming chat at concurrency 1, 8 and 32 with 64 output tokens. Writes
bench/results/<date>-<host>.json and .md."""

from __future__ import annotations

import asyncio
import datetime
import socket
import tempfile
from pathlib import Path

import msgspec

from bench.loadgen import LoadResult, run_load
from bench.servers import MODEL_ID, REPO, platform, vllm_server

CONCURRENCY = (1, 8, 32)
REQUESTS_PER_LEVEL = {1: 8, 8: 32, 32: 64}


def measure(name: str, url: str) -> list[dict]:
    rows = []
    for level in CONCURRENCY:
        result: LoadResult = asyncio.run(run_load(url, MODEL_ID, concurrency=level, requests=REQUESTS_PER_LEVEL[level]))
        print(
            f"[{name}] c={level}: {result.output_tokens_per_s:.1f} tok/s, TTFT p50 {result.ttft_p50_ms:.0f} ms, "
            f"errors {result.errors}",
            flush=True,
        )
        rows.append({"system": name, **msgspec.structs.asdict(result)})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| system | concurrency | tok/s | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | req/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['system']} | {row['concurrency']} | {row['output_tokens_per_s']:.1f} | {row['ttft_p50_ms']:.0f} | "
            f"{row['ttft_p95_ms']:.0f} | {row['itl_p50_ms']:.1f} | {row['requests_per_s']:.2f} | {row['errors']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rows: list[dict] = []
    with platform(8400, work / "data", work / "platform.log") as server:
        rows += measure("platform", server.url)
    with vllm_server(8401, work / "vllm.log") as server:
        rows += measure("vllm-server", server.url)
    stamp = f"{datetime.date.today().isoformat()}-{socket.gethostname()}"
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}.json").write_bytes(msgspec.json.format(msgspec.json.encode(rows)))
    (out / f"{stamp}.md").write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
