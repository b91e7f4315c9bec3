"""The project's load generator: closed-loop streaming chat requests over httpx, a fixed request count
after a warm-up, reporting output tokens/s, TTFT p50/p95, inter-token latency p50, requests/s, errors."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import msgspec

PROMPT = "Write a long story about a lighthouse keeper."
# Each worker pauses a random 0..PAUSE_S between its requests (a user's think time), so that a request's
# arrival is not tied to the end of the previous stream (without them a proxy's TTFT came out below its server's).
PAUSE_S = 0.3
API = Literal["chat", "completions"]
# The load generator's priority while it measures: it shares this machine's two cores with the system under
# test, and at normal priority it waited for a CPU 15 % of a c=32 run (0.4 % raised), counted as latency.
LOADGEN_NICE = -10
_AUTOGROUP = Path("/proc/self/autogroup")


@contextlib.contextmanager
def load_generator_priority() -> Iterator[str]:
    """Runs the block with this thread, and its session's scheduling group, at LOADGEN_NICE; yields how.

    Linux shares CPU time between sessions (autogroups) before it looks at nice values, and every system
    under test runs in a session of its own (bench.servers), so the session's nice is what counts. Only
    the measurement runs prioritized: servers and training scripts started from here get normal priority.
    Needs CAP_SYS_NICE; without it the block runs at normal priority and says so."""
    previous_nice = os.getpriority(os.PRIO_PROCESS, 0)
    previous_group = _autogroup_nice()
    try:
        os.setpriority(os.PRIO_PROCESS, 0, LOADGEN_NICE)
        if previous_group is not None:
            _AUTOGROUP.write_text(str(LOADGEN_NICE))
        raised = True
    except PermissionError:
        os.setpriority(os.PRIO_PROCESS, 0, previous_nice)  # lowering one's priority is always allowed
        raised = False
    if not raised:
        yield "normal priority (raising it needs CAP_SYS_NICE)"
        return
    try:
        yield f"nice {LOADGEN_NICE}" + ("" if previous_group is None else f", session group nice {LOADGEN_NICE}")
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, previous_nice)
        if previous_group is not None:
            _AUTOGROUP.write_text(str(previous_group))


def _autogroup_nice() -> int | None:
    """This session's group nice, or None where the kernel has no autogroups."""
    try:
        return int(_AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


class LoadResult(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int
    requests: int
    errors: int
    output_tokens: int
    wall_s: float
    output_tokens_per_s: float
    requests_per_s: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    ttfts_ms: list[float] = msgspec.field(default_factory=list)
    """Every request's TTFT, sorted: the report pools them over rounds for an interval (bench.report)."""
    itls_ms: list[float] = msgspec.field(default_factory=list)
    """Every request's median inter-token gap, sorted, for the same kind of interval."""


class _Sample(msgspec.Struct):
    duration_s: float
    ttft_s: float
    gaps_s: list[float]
    tokens: int


async def _one(client: httpx.AsyncClient, model: str, max_tokens: int, api: API = "chat") -> _Sample:
    """One streamed request; `api` "completions" sends PROMPT as a raw prompt to /v1/completions."""
    prompt: dict[str, object] = {"messages": [{"role": "user", "content": PROMPT}]} if api == "chat" else {"prompt": PROMPT}
    body = {
        "model": model,
        **prompt,
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    arrivals: list[float] = []
    tokens = 0
    async with client.stream("POST", f"/v1/{'chat/completions' if api == 'chat' else 'completions'}", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if any(_text(choice) for choice in chunk.get("choices", [])):
                arrivals.append(time.perf_counter())
    if not arrivals:
        raise RuntimeError("no content streamed")
    if tokens != max_tokens:
        raise RuntimeError(f"{tokens} tokens instead of {max_tokens}: ignore_eos or usage did not reach the engine")
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    return _Sample(duration_s=arrivals[-1] - started, ttft_s=arrivals[0] - started, gaps_s=gaps, tokens=tokens)


def _text(choice: dict) -> str:
    """A streamed choice's new text: a chat delta's content or a text completion's text."""
    return (choice["delta"].get("content") if "delta" in choice else choice.get("text")) or ""


async def run_load(
    base_url: str,
    models: str | list[str],
    *,
    concurrency: int,
    requests: int,
    max_tokens: int = 64,
    warmup: int = 2,
    pause_s: float = PAUSE_S,
    api: API = "chat",
) -> LoadResult:
    """`models` is one model, or several that requests take in turn (mixed traffic); the warm-up uses each
    once (so adapters are loaded before the clock starts), then sends `warmup` requests together.

    Workers start spread over one request's duration (timed in the warm-up): started together, answers of
    one length would keep them in lockstep, every request's prompt would wait for a whole wave of prompts,
    and a slower proxy in front of the same engine would win on TTFT by breaking the waves up. For the same
    reason each worker then pauses a random 0..`pause_s` before each further request; the pauses come from
    a fixed seed, so every system sees the same ones."""
    names = [models] if isinstance(models, str) else list(models)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        # One at a time: Ray Serve LLM answers 500 to concurrent first uses of an adapter.
        alone = [await _one(client, name, max_tokens, api) for name in names]
        stagger_s = statistics.median(sample.duration_s for sample in alone) / concurrency
        await asyncio.gather(*(_one(client, names[index % len(names)], max_tokens, api) for index in range(warmup)))
        samples: list[_Sample] = []
        errors = 0
        remaining = requests
        turns = itertools.cycle(names)

        async def worker(index: int) -> None:
            nonlocal remaining, errors
            pauses = random.Random(index)
            await asyncio.sleep(index * stagger_s)
            first = True
            while remaining > 0:
                remaining -= 1
                if not first:
                    await asyncio.sleep(pauses.uniform(0, pause_s))
                first = False
                try:
                    samples.append(await _one(client, next(turns), max_tokens, api))
                except (httpx.HTTPError, RuntimeError, ValueError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(index) for index in range(concurrency)))
        wall = time.perf_counter() - started
    tokens = sum(sample.tokens for sample in samples)
    ttfts = sorted(sample.ttft_s * 1000 for sample in samples)
    gaps = [gap * 1000 for sample in samples for gap in sample.gaps_s]
    return LoadResult(
        concurrency=concurrency,
        requests=requests,
        errors=errors,
        output_tokens=tokens,
        wall_s=wall,
        output_tokens_per_s=tokens / wall if wall else 0.0,
        requests_per_s=len(samples) / wall if wall else 0.0,
        ttft_p50_ms=statistics.median(ttfts) if ttfts else None,
        ttft_p95_ms=ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))] if ttfts else None,
        itl_p50_ms=statistics.median(gaps) if gaps else None,
        ttfts_ms=[round(ttft, 1) for ttft in ttfts],
        itls_ms=sorted(round(statistics.median(s.gaps_s) * 1000, 2) for s in samples if s.gaps_s),
    )
