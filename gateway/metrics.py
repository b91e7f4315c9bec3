"""The platform's metrics: what each gateway replica counts about its requests, and the catalogue of every family
`/metrics` shows. Labels carry names only: a key's *name* (never the key), a model that resolved, an adapter."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping

from engines.core.metrics import LATENCY_BUCKETS_S, TOKEN_LATENCY_BUCKETS_S, Family, Samples
from engines.metrics import ENGINE_FAMILIES
from gateway.observability import RequestLog

REQUESTS = Family(
    "llm_requests_total", "counter", "Requests answered, by endpoint, model, adapter, key name and HTTP status.",
    ("endpoint", "model", "adapter", "key", "status"),
)  # fmt: skip
GATEWAY_REQUESTS = Family(
    "llm_gateway_requests_total", "counter", "Requests answered by each gateway replica.", ("replica",)
)
IN_FLIGHT = Family("llm_requests_in_flight", "gauge", "Requests being answered now, over all gateway replicas.")
DURATION = Family(
    "llm_request_duration_seconds", "histogram", "Time from a request's arrival to its last byte.",
    ("endpoint", "model", "adapter"), LATENCY_BUCKETS_S,
)  # fmt: skip
TTFT = Family(
    "llm_time_to_first_token_seconds", "histogram", "Time from a generation request's arrival to its first token.",
    ("model", "adapter"), LATENCY_BUCKETS_S,
)  # fmt: skip
ITL = Family(
    "llm_inter_token_latency_seconds", "histogram",
    "Time between a stream's tokens after the first (each token observed at its request's mean interval).",
    ("model", "adapter"), TOKEN_LATENCY_BUCKETS_S,
)  # fmt: skip
PROMPT_TOKENS = Family(
    "llm_prompt_tokens_total", "counter", "Prompt (and embedding input) tokens, by model, adapter and key name.",
    ("model", "adapter", "key"),
)  # fmt: skip
COMPLETION_TOKENS = Family(
    "llm_completion_tokens_total", "counter", "Generated tokens, by model, adapter and key name.",
    ("model", "adapter", "key"),
)  # fmt: skip
FINISH_REASONS = Family(
    "llm_finish_reasons_total", "counter", "Choices finished, by model, adapter and reason (stop, length, ...).",
    ("model", "adapter", "reason"),
)  # fmt: skip
RATE_LIMITED = Family(
    "llm_rate_limited_requests_total", "counter", "Requests refused with 429 past a key's limits, by key name.", ("key",)
)
SHED = Family(
    "llm_shed_requests_total", "counter", "Requests refused with 503 because the engines were full or gone, by endpoint.",
    ("endpoint",),
)  # fmt: skip
GATEWAY_FAMILIES = (
    REQUESTS, GATEWAY_REQUESTS, IN_FLIGHT, DURATION, TTFT, ITL, PROMPT_TOKENS, COMPLETION_TOKENS, FINISH_REASONS,
    RATE_LIMITED, SHED,
)  # fmt: skip

JOBS = Family("llm_fine_tuning_jobs", "gauge", "Fine-tuning jobs, by status.", ("status",))
JOB_DURATION = Family(
    "llm_fine_tuning_job_duration_seconds", "histogram", "Time from a finished job's creation to its end, by status.",
    ("status",), (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0),
)  # fmt: skip
TRAINED_TOKENS = Family("llm_fine_tuning_trained_tokens_total", "counter", "Tokens trained on by succeeded jobs.")
JOB_FAMILIES = (JOBS, JOB_DURATION, TRAINED_TOKENS)

FAMILIES = (*GATEWAY_FAMILIES, *ENGINE_FAMILIES, *JOB_FAMILIES)
"""Every family `/metrics` shows, in its order."""

GENERATING = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/chat")


class GatewayMetrics:
    """This gateway replica's counts; `snapshot` is what it reports to the metrics hub."""

    def __init__(self, replica: str | None = None) -> None:
        self.replica = replica or uuid.uuid4().hex[:12]
        self.samples = Samples()
        self.in_flight = 0

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, log: RequestLog, *, endpoint: str, key: str, ended_at: float) -> None:
        self.in_flight -= 1
        samples, model, adapter = self.samples, log.served_model, log.adapter
        status = str(log.status or 500)
        samples.add(REQUESTS, (endpoint, model, adapter, key, status))
        samples.add(GATEWAY_REQUESTS, (self.replica,))
        samples.observe(DURATION, (endpoint, model, adapter), ended_at - log.started_at)
        if status == "429":
            samples.add(RATE_LIMITED, (key,))
        elif status == "503":
            samples.add(SHED, (endpoint,))
        if not model:
            return
        if log.prompt_tokens:
            samples.add(PROMPT_TOKENS, (model, adapter, key), log.prompt_tokens)
        if log.completion_tokens:
            samples.add(COMPLETION_TOKENS, (model, adapter, key), log.completion_tokens)
        for reason in log.finish_reasons:
            samples.add(FINISH_REASONS, (model, adapter, reason))
        if log.first_token_at is not None and endpoint in GENERATING:
            samples.observe(TTFT, (model, adapter), log.first_token_at - log.started_at)
            later_tokens = (log.completion_tokens or 0) - 1
            if later_tokens > 0:
                samples.observe(ITL, (model, adapter), (ended_at - log.first_token_at) / later_tokens, later_tokens)

    def snapshot(self) -> Samples:
        """A copy: the report may be serialized after this replica has counted on."""
        samples = copy.deepcopy(self.samples)
        samples.set(IN_FLIGHT, (), self.in_flight)
        return samples


def job_samples(counts: Mapping[str, int], finished: list[tuple[str, float, int]]) -> Samples:
    """The fine-tuning families from the store: job counts by status, and (status, seconds, trained tokens) of each
    finished job. Every replica reads the same store, so these are not summed across replicas."""
    samples = Samples()
    for status, count in counts.items():
        samples.set(JOBS, (status,), count)
    samples.set(TRAINED_TOKENS, (), 0)
    for status, seconds, tokens in finished:
        samples.observe(JOB_DURATION, (status,), seconds)
        if status == "succeeded":
            samples.add(TRAINED_TOKENS, (), tokens)
    return samples


def metrics_table() -> str:
    """README's table of the families (`python -m gateway.metrics`)."""
    rows = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for family in FAMILIES:
        labels = ", ".join(f"`{label}`" for label in family.labels) or "-"
        rows.append(f"| `{family.name}` | {family.kind} | {labels} | {family.help} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(metrics_table(), end="")
