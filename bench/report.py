"""Turns the rows of a run into medians, ratios against the peers, Markdown tables and PNG plots."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.measure import Row

PEERS = ("vllm-bare", "vllm-server", "litellm-proxy", "ray-serve-llm", "platform-metrics-off")
NOISE = ("vllm-bare-again", "vllm-bare")
"""The pair whose ratio is the noise floor: one system against a second start of itself in the same round."""
LOOPS = ("unpaced", "paced")


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _by(rows: list[Row], *keys: str) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(key) for key in keys)].append(row)
    return groups


def _paired(
    rows: list[Row], system: str, peer: str, field: str, keys: tuple[str, ...]
) -> dict[tuple, list[tuple[Any, Any]]]:
    """Per value of `keys`, (system, peer) pairs of `field` from the same round."""
    by_round = _by(rows, *keys, "round", "system")
    pairs: dict[tuple, list[tuple[Any, Any]]] = defaultdict(list)
    for (*values, round_no, name), group in by_round.items():
        if name != system:
            continue
        other = by_round.get((*values, round_no, peer))
        if other and group[0].get(field) is not None and other[0].get(field) is not None:
            pairs[tuple(values)].append((group[0][field], other[0][field]))
    return pairs


def ttft_difference_interval(
    ours: list[list[float]], theirs: list[list[float]], *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of median(ours) - median(theirs), each system's per-request TTFTs pooled over rounds
    (`ours[i]` and `theirs[i]` from round i). A paired two-level bootstrap: rounds are drawn with
    replacement, the same ones for both systems (they ran side by side), then requests within each drawn
    round. Both levels count on a shared machine, where a whole round can run slow."""
    rng = random.Random(seed)
    differences = []
    for _ in range(resamples):
        drawn = [rng.randrange(len(ours)) for _ in ours]
        mine = [ttft for i in drawn for ttft in rng.choices(ours[i], k=len(ours[i]))]
        peer = [ttft for i in drawn for ttft in rng.choices(theirs[i], k=len(theirs[i]))]
        differences.append(statistics.median(mine) - statistics.median(peer))
    differences.sort()
    return differences[int(0.025 * resamples)], differences[int(0.975 * resamples) - 1]


def _comparison(level: list[Row], system: str, peer: str) -> dict[str, Any]:
    """`system` against `peer` in the rows of one (loop, concurrency): median per-round ratios of tok/s and ITL p50,
    the median TTFT p50 difference, and a 95 % interval for it where both kept per-request samples."""

    def pairs(field: str) -> list[tuple[Any, Any]]:
        return _paired(level, system, peer, field, ()).get((), [])

    tok, ttft, itl = pairs("output_tokens_per_s"), pairs("ttft_p50_ms"), pairs("itl_p50_ms")
    if not tok:
        return {}
    comparison: dict[str, Any] = {
        "ratio": _median(ours / theirs for ours, theirs in tok),
        "ttft_delta_ms": _median(ours - theirs for ours, theirs in ttft),
        "itl_ratio": _median(ours / theirs for ours, theirs in itl if theirs),
    }
    samples = [(ours, theirs) for ours, theirs in pairs("ttfts_ms") if ours and theirs]
    if samples:
        ours, theirs = zip(*samples, strict=True)
        comparison["ttft_delta_interval_ms"] = list(ttft_difference_interval(list(ours), list(theirs)))
    return comparison


def gateways_summary(rows: list[Row]) -> list[dict]:
    """Per loop and concurrency: medians per system; the platform against each peer (`vs`), and the noise floor
    (`noise`), each as median per-round ratios and differences (rows from before loops were kept are paced)."""
    rows = [{"loop": "paced", **row} for row in rows if row["scenario"] == "gateways"]
    summary = []
    for loop, concurrency in sorted(
        {(row["loop"], row["concurrency"]) for row in rows}, key=lambda k: (LOOPS.index(k[0]), k[1])
    ):
        entry: dict = {"loop": loop, "concurrency": concurrency, "systems": {}, "vs": {}}
        level = [r for r in rows if r["loop"] == loop and r["concurrency"] == concurrency]
        for (system,), group in _by(level, "system").items():
            entry["systems"][system] = {
                "tok_s": _median(r["output_tokens_per_s"] for r in group),
                "ttft_p50_ms": _median(r["ttft_p50_ms"] for r in group),
                "ttft_p95_ms": _median(r["ttft_p95_ms"] for r in group),
                "itl_p50_ms": _median(r["itl_p50_ms"] for r in group),
                "errors": sum(r["errors"] for r in group),
                "rounds": len(group),
            }
        for peer in PEERS:
            if comparison := _comparison(level, "platform", peer):
                entry["vs"][peer] = comparison
        if noise := _comparison(level, *NOISE):
            entry["noise"] = noise
        summary.append(entry)
    return summary


def completions_table(rows: list[Row]) -> str:
    """`/v1/completions`, the platform against vLLM's server without LoRA: medians of per-round ratios."""
    rows = [row for row in rows if row["scenario"] == "completions"]
    lines = [
        "| loop | concurrency | platform tok/s | vLLM's server tok/s | ratio | TTFT p50 difference | ITL p50 ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for (loop, concurrency), level in sorted(
        _by(rows, "loop", "concurrency").items(), key=lambda item: (LOOPS.index(item[0][0]), item[0][1])
    ):
        tok = {
            system: _median(row["output_tokens_per_s"] for row in group) for (system,), group in _by(level, "system").items()
        }
        comparison = _comparison(level, "platform", "vllm-bare")
        lines.append(
            f"| {loop} | {concurrency} | {_fmt(tok.get('platform'))} | {_fmt(tok.get('vllm-bare'))} "
            f"| {_fmt(comparison.get('ratio'), 2, 'x')} | {_fmt(comparison.get('ttft_delta_ms'), 0, ' ms')}"
            f"{_interval(comparison.get('ttft_delta_interval_ms'))} | {_fmt(comparison.get('itl_ratio'), 2, 'x')} |"
        )
    return "\n".join(lines) + "\n"


def gateways_table(summary: list[dict]) -> str:
    """One table per loop: a row per concurrency and system, with the platform against that system."""
    parts = []
    for loop in LOOPS:
        entries = [entry for entry in summary if entry["loop"] == loop]
        if not entries:
            continue
        title = "no pause between requests" if loop == "unpaced" else "each client pausing 0-0.3 s between requests"
        lines = [
            f"Closed loop, {title}:\n",
            "| concurrency | system | tok/s | TTFT p50 | ITL p50 | platform ÷ this: tok/s | platform - this: TTFT p50 "
            "| platform ÷ this: ITL p50 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in entries:
            for system in ("platform", *PEERS):
                if system not in entry["systems"]:
                    continue
                measured = entry["systems"][system]
                versus = entry["vs"].get(system, {})
                ttft = _fmt(versus.get("ttft_delta_ms"), 0, " ms") + _interval(versus.get("ttft_delta_interval_ms"))
                lines.append(
                    f"| {entry['concurrency']} | {system} | {_fmt(measured['tok_s'])} | "
                    f"{_fmt(measured['ttft_p50_ms'], 0, ' ms')} | {_fmt(measured['itl_p50_ms'], 1, ' ms')} | "
                    f"{_fmt(versus.get('ratio'), 2, 'x')} | {ttft if versus else '-'} | "
                    f"{_fmt(versus.get('itl_ratio'), 2, 'x')} |"
                )
        noise = [
            f"c={entry['concurrency']}: {_fmt(floor['ratio'], 2, 'x')} tok/s, "
            f"{_fmt(floor['ttft_delta_ms'], 0, ' ms')} TTFT p50, {_fmt(floor['itl_ratio'], 2, 'x')} ITL p50"
            for entry in entries
            if (floor := entry.get("noise"))
        ]
        if noise:
            lines.append(
                f"\nNoise floor (the bare server against a second start of itself, same round): {'; '.join(noise)}."
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _interval(bounds: list[float] | None) -> str:
    return "" if bounds is None else f", 95 % {bounds[0]:+.0f}..{bounds[1]:+.0f} ms"


def adapters_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "adapters"]
    lines = ["| system | adapters in the mix | tok/s | ÷ base-only (same round) | TTFT p50 |", "|---|---|---|---|---|"]
    base = _by(rows, "system", "adapters", "round")
    for (system, count), group in sorted(_by(rows, "system", "adapters").items()):
        ratios = [
            row["output_tokens_per_s"] / same_round[0]["output_tokens_per_s"]
            for row in group
            if (same_round := base.get((system, 0, row["round"])))
        ]
        label = "base only" if count == 0 else str(count)
        tok = _median(r["output_tokens_per_s"] for r in group)
        ttft = _median(r["ttft_p50_ms"] for r in group)
        lines.append(f"| {system} | {label} | {_fmt(tok)} | {_fmt(_median(ratios), 2, 'x')} | {_fmt(ttft, 0, ' ms')} |")
    return "\n".join(lines) + "\n"


def fine_tuning_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "fine-tuning"]
    alone = {row["round"]: row["tokens_per_second"] for row in rows if row["system"] == "bare-trl"}
    beside = {row["round"]: row["tokens_per_second"] for row in rows if row["system"] == "bare-trl-beside-vllm-server"}
    ours = [row for row in rows if row["system"] == "platform"]

    def ratio(baseline: dict[int, float]) -> str:
        values = [row["tokens_per_second"] / baseline[row["round"]] for row in ours if row["round"] in baseline]
        return _fmt(_median(values), 2, "x")

    lines = [
        "| system | training tokens/s | platform ÷ this (same round) | `succeeded` -> first chat |",
        "|---|---|---|---|",
        f"| bare TRL + PEFT script, idle machine | {_fmt(_median(alone.values()))} | {ratio(alone)} | - |",
        f"| bare TRL + PEFT script beside an idle vLLM server | {_fmt(_median(beside.values()))} | {ratio(beside)} | - |",
        f"| platform job | {_fmt(_median(r['tokens_per_second'] for r in ours))} | 1.00x | "
        f"{_fmt(_median(r['servable_after_s'] for r in ours), 2, ' s')} |",
    ]
    return "\n".join(lines) + "\n"


def scaling_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "scaling"]
    lines = ["| engine replicas | concurrency | tok/s | TTFT p50 | ITL p50 |", "|---|---|---|---|---|"]
    for (replicas, concurrency), group in sorted(_by(rows, "replicas", "concurrency").items()):
        lines.append(
            f"| {replicas} | {concurrency} | {_fmt(_median(r['output_tokens_per_s'] for r in group))} | "
            f"{_fmt(_median(r['ttft_p50_ms'] for r in group), 0, ' ms')} | "
            f"{_fmt(_median(r['itl_p50_ms'] for r in group), 1, ' ms')} |"
        )
    return "\n".join(lines) + "\n"


def artifact_store_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "artifact-store"]
    servable = [row["servable_after_s"] for row in rows if row["system"] == "platform-s3"]
    lines = [
        "| with `ARTIFACT_STORE=s3://...` | median | over |",
        "|---|---|---|",
        f"| `succeeded` -> first answer of the `ft:` model | {_fmt(_median(servable), 2, ' s')} | {len(servable)} jobs |",
    ]
    labels = {
        "from-s3": "TTFT, an adapter's first request, weights from S3",
        "from-node-cache": "TTFT, an adapter's first request, weights already in the node's cache",
        "loaded": "TTFT, an adapter already loaded",
    }
    for kind, label in labels.items():
        values = [row["ttft_ms"] for row in rows if row["system"] == f"adapter-{kind}"]
        lines.append(f"| {label} | {_fmt(_median(values), 0, ' ms')} | {len(values)} samples |")
    return "\n".join(lines) + "\n"


def cross_host_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "cross-host"]
    lines = [
        "| concurrency | one host: tok/s | across hosts: tok/s | ratio (same round) | TTFT p50 one / across "
        "| ITL p50 one / across |",
        "|---|---|---|---|---|---|",
    ]
    for (concurrency,), group in sorted(_by(rows, "concurrency").items()):
        one = {row["round"]: row for row in group if row["system"] == "one-host"}
        across = {row["round"]: row for row in group if row["system"] == "cross-host"}
        ratios = [across[r]["output_tokens_per_s"] / one[r]["output_tokens_per_s"] for r in across if r in one]

        def median_of(side: dict[int, Row], field: str) -> float | None:
            return _median(row[field] for row in side.values())

        lines.append(
            f"| {concurrency} | {_fmt(median_of(one, 'output_tokens_per_s'))} | "
            f"{_fmt(median_of(across, 'output_tokens_per_s'))} | {_fmt(_median(ratios), 2, 'x')} | "
            f"{_fmt(median_of(one, 'ttft_p50_ms'), 0)} / {_fmt(median_of(across, 'ttft_p50_ms'), 0, ' ms')} | "
            f"{_fmt(median_of(one, 'itl_p50_ms'), 1)} / {_fmt(median_of(across, 'itl_p50_ms'), 1, ' ms')} |"
        )
    return "\n".join(lines) + "\n"


def data_parallel_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "data-parallel"]
    lines = [
        "| workers | steps/s | tokens/s | ratio to one worker (same round) | final loss |",
        "|---|---|---|---|---|",
    ]
    one = {row["round"]: row for row in rows if row["system"] == "1-workers"}
    for (system,), group in sorted(_by(rows, "system").items()):
        ratios = [row["tokens_per_second"] / one[row["round"]]["tokens_per_second"] for row in group if row["round"] in one]
        lines.append(
            f"| {system.split('-')[0]} | {_fmt(_median(row['steps_per_second'] for row in group), 3)} | "
            f"{_fmt(_median(row['tokens_per_second'] for row in group))} | {_fmt(_median(ratios), 2, 'x')} | "
            f"{_fmt(_median(row['final_loss'] for row in group), 4)} |"
        )
    return "\n".join(lines) + "\n"


def plots(summary: list[dict], prefix: Path) -> list[Path]:
    """Throughput and TTFT p50 against concurrency, one line per system and loop (unpaced solid, paced dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for field, label, name in (("tok_s", "output tokens/s", "throughput"), ("ttft_p50_ms", "TTFT p50 (ms)", "ttft")):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for loop, style in (("unpaced", "-"), ("paced", "--")):
            for system in ("platform", *PEERS):
                points = [
                    (e["concurrency"], e["systems"][system][field])
                    for e in summary
                    if e["loop"] == loop and system in e["systems"] and e["systems"][system][field] is not None
                ]
                if points:
                    axes.plot(*zip(*points, strict=True), style, marker="o", label=f"{system} ({loop})")
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrent streams")
        axes.set_ylabel(label)
        axes.set_title(f"Streaming chat, 64 output tokens: {label}")
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
        path = prefix.with_name(f"{prefix.name}-{name}.png")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def startup_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "start-up"]
    platform = {row["round"]: row["ready_s"] for row in rows if row["system"] == "platform"}
    bare = {row["round"]: row["ready_s"] for row in rows if row["system"] == "vllm-bare"}
    recovered = [row["recovered_s"] for row in rows if row["system"] == "platform-recovery"]
    ratios = [platform[r] / bare[r] for r in platform if r in bare]
    lines = [
        "| measure | median | ÷ vLLM's server (same round) | rounds |",
        "|---|---|---|---|",
        f"| `make run` (set up) to `/health` 200 | {_fmt(_median(platform.values()), 1, ' s')} | "
        f"{_fmt(_median(ratios), 2, 'x')} | {len(platform)} |",
        f"| vLLM's server (no LoRA) to `/health` 200 | {_fmt(_median(bare.values()), 1, ' s')} | 1.00x | {len(bare)} |",
        f"| engine replica SIGKILLed to the next answered chat | {_fmt(_median(recovered), 1, ' s')} | - "
        f"| {len(recovered)} |",
    ]
    return "\n".join(lines) + "\n"


def profile_table(rows: list[Row]) -> str:
    rows = [row for row in rows if row["scenario"] == "profile"]
    sampled = [row for row in rows if "folder" in row]
    lines = ["| system | tok/s while sampled (unpaced c=8) | samples and summary |", "|---|---|---|"]
    for row in sorted(sampled, key=lambda row: (row["system"], row["round"])):
        folder = Path(row["folder"])
        link = f"bench/results/profiles/{folder.name}/{row['system']}-summary.md"
        lines.append(f"| {row['system']} | {_fmt(row['tok_s_while_sampled'])} | `{link}` |")
    for ops in (row for row in rows if row["system"] == "lora-ops"):
        lines += [
            "",
            f"One decode step of {ops['tokens']} tokens over {ops['adapters']} rank-{ops['rank']} adapters "
            f"({ops['adapter_mb']} MB of weights), one thread:",
            "",
            "| LoRA products as the engine runs them | reading the adapters' weights once | the base model's linears |",
            "|---|---|---|",
            f"| {_fmt(ops['lora_ms'], 1, ' ms')} | {_fmt(ops['read_floor_ms'], 1, ' ms')} "
            f"| {_fmt(ops['base_linear_ms'], 1, ' ms')} |",
        ]
    return "\n".join(lines) + "\n"
