"""The benchmark's arithmetic: medians over rounds, ratios taken within a round."""

from bench import report


def row(system: str, concurrency: int, round_no: int, tok_s: float, ttft: float, **extra) -> dict:
    return {
        "scenario": extra.pop("scenario", "gateways"),
        "system": system,
        "round": round_no,
        "concurrency": concurrency,
        "output_tokens_per_s": tok_s,
        "ttft_p50_ms": ttft,
        "ttft_p95_ms": ttft * 2,
        "itl_p50_ms": 10.0,
        "errors": 0,
        **extra,
    }


def test_ratios_are_paired_within_rounds() -> None:
    rows = [
        row("platform", 8, 0, 50.0, 1000.0),
        row("vllm-server", 8, 0, 40.0, 1100.0),
        row("platform", 8, 1, 100.0, 900.0),
        row("vllm-server", 8, 1, 100.0, 950.0),
        row("platform", 8, 2, 60.0, 800.0),
        row("vllm-server", 8, 2, 50.0, 700.0),
    ]
    [entry] = report.gateways_summary(rows)
    assert entry["loop"] == "paced"  # rows from before the loops were kept
    assert entry["systems"]["platform"]["tok_s"] == 60.0 and entry["systems"]["vllm-server"]["rounds"] == 3
    assert entry["vs"]["vllm-server"]["ratio"] == 1.2  # median of 1.25, 1.0, 1.2
    assert entry["vs"]["vllm-server"]["ttft_delta_ms"] == -50.0  # median of -100, -50, +100
    table = report.gateways_table([entry])
    assert "| 8 | vllm-server | 50.0 | 950 ms | 10.0 ms | 1.20x | -50 ms | 1.00x |" in table
    assert "litellm" not in table


def test_each_loop_gets_its_table_and_the_noise_floor_its_line() -> None:
    rows = [
        row("platform", 8, 0, 180.0, 110.0, loop="unpaced", itl_p50_ms=36.0),
        row("vllm-bare", 8, 0, 200.0, 100.0, loop="unpaced", itl_p50_ms=40.0),
        row("vllm-bare-again", 8, 0, 190.0, 104.0, loop="unpaced", itl_p50_ms=41.0),
        row("platform", 8, 0, 100.0, 300.0, loop="paced"),
        row("vllm-bare", 8, 0, 100.0, 320.0, loop="paced"),
    ]
    unpaced, paced = report.gateways_summary(rows)
    assert (unpaced["loop"], paced["loop"]) == ("unpaced", "paced")
    assert unpaced["vs"]["vllm-bare"]["ratio"] == 0.9 and unpaced["vs"]["vllm-bare"]["itl_ratio"] == 0.9
    assert unpaced["noise"]["ratio"] == 0.95 and "noise" not in paced
    table = report.gateways_table([unpaced, paced])
    assert table.index("no pause between requests") < table.index("pausing 0-0.3 s")
    assert "| 8 | vllm-bare | 200.0 | 100 ms | 40.0 ms | 0.90x | 10 ms | 0.90x |" in table
    assert "Noise floor (the bare server against a second start of itself, same round): c=8: 0.95x tok/s" in table


def test_startup_table_pairs_starts_within_a_round() -> None:
    rows = [
        {"scenario": "start-up", "system": "platform", "round": 0, "ready_s": 36.0},
        {"scenario": "start-up", "system": "vllm-bare", "round": 0, "ready_s": 24.0},
        {"scenario": "start-up", "system": "platform", "round": 1, "ready_s": 30.0},
        {"scenario": "start-up", "system": "vllm-bare", "round": 1, "ready_s": 25.0},
        {"scenario": "start-up", "system": "platform-recovery", "round": 0, "recovered_s": 22.0},
        {"scenario": "start-up", "system": "platform-recovery", "round": 1, "recovered_s": 26.0},
    ]
    table = report.startup_table(rows)
    assert "| `make run` (set up) to `/health` 200 | 33.0 s | 1.35x | 2 |" in table  # median of 1.5 and 1.2
    assert "| engine replica SIGKILLed to the next answered chat | 24.0 s | - | 2 |" in table


def test_adapter_ratio_against_base_only_of_the_same_system_and_round() -> None:
    rows = [
        row("platform", 8, 0, 50.0, 1.0, scenario="adapters", adapters=0),
        row("platform", 8, 0, 40.0, 1.0, scenario="adapters", adapters=8),
        row("vllm-server", 8, 0, 60.0, 1.0, scenario="adapters", adapters=0),
        row("vllm-server", 8, 0, 30.0, 1.0, scenario="adapters", adapters=8),
    ]
    table = report.adapters_table(rows)
    assert "| platform | 8 | 40.0 | 0.80x |" in table
    assert "| vllm-server | 8 | 30.0 | 0.50x |" in table


def test_ttft_interval_covers_a_known_shift_and_excludes_zero() -> None:
    rounds = [[float(ms) for ms in range(1000, 1400, 2)] for _ in range(3)]  # 200 requests a round
    shifted = [[ms + 50 for ms in samples] for samples in rounds]
    low, high = report.ttft_difference_interval(shifted, rounds)
    assert low <= 50 <= high and low > 0


def test_ttft_interval_widens_when_rounds_disagree() -> None:
    base = [float(ms) for ms in range(1000, 1400, 2)]
    steady = report.ttft_difference_interval([base, base, base], [base, base, base])
    drifting = report.ttft_difference_interval([[ms + 100 for ms in base], base, [ms - 100 for ms in base]], [base] * 3)
    assert drifting[1] - drifting[0] > steady[1] - steady[0]


def test_interval_only_where_both_systems_kept_samples() -> None:
    samples = [float(ms) for ms in range(900, 1100)]
    rows = [
        row("platform", 32, 0, 70.0, 1000.0, ttfts_ms=samples),
        row("vllm-server", 32, 0, 70.0, 1000.0, ttfts_ms=samples),
        row("litellm-proxy", 32, 0, 70.0, 1000.0),  # a row from before samples were kept
    ]
    [entry] = report.gateways_summary(rows)
    assert "ttft_delta_interval_ms" in entry["vs"]["vllm-server"]
    assert "ttft_delta_interval_ms" not in entry["vs"]["litellm-proxy"]
    table = report.gateways_table([entry])
    assert "| 0 ms, 95 % " in table and "| 0 ms |" in table


def test_artifact_store_table_has_the_medians_of_each_measure() -> None:
    rows = [
        {"scenario": "artifact-store", "system": "platform-s3", "round": r, "servable_after_s": s}
        for r, s in enumerate([0.5, 1.5, 1.0])
    ] + [
        {"scenario": "artifact-store", "system": f"adapter-{kind}", "round": 0, "ttft_ms": value}
        for kind, value in (("from-s3", 900.0), ("from-node-cache", 400.0), ("loaded", 50.0))
    ]
    table = report.artifact_store_table(rows)
    assert "| `succeeded` -> first answer of the `ft:` model | 1.00 s | 3 jobs |" in table
    assert "weights from S3 | 900 ms | 1 samples |" in table and "already loaded | 50 ms | 1 samples |" in table


def test_cross_host_table_pairs_the_two_paths_within_a_round() -> None:
    rows = [
        row("one-host", 8, 0, 100.0, 200.0, scenario="cross-host", itl_p50_ms=50.0),
        row("cross-host", 8, 0, 90.0, 220.0, scenario="cross-host", itl_p50_ms=55.0),
    ]
    table = report.cross_host_table(rows)
    assert "| 8 | 100.0 | 90.0 | 0.90x | 200 / 220 ms | 50.0 / 55.0 ms |" in table


def test_data_parallel_table_pairs_each_run_with_the_one_worker_run_of_its_round() -> None:
    def job(workers: int, round_no: int, tokens_per_second: float) -> dict:
        steps_per_second = tokens_per_second / 100
        return {"scenario": "data-parallel", "system": f"{workers}-workers", "round": round_no, "final_loss": 0.5} | {
            "tokens_per_second": tokens_per_second,
            "steps_per_second": steps_per_second,
        }

    rows = [job(1, 0, 100.0), job(2, 0, 80.0), job(1, 1, 50.0), job(2, 1, 45.0)]
    table = report.data_parallel_table(rows)
    assert "| 1 | 0.750 | 75.0 | 1.00x | 0.5000 |" in table
    assert "| 2 | 0.625 | 62.5 | 0.85x | 0.5000 |" in table  # the median of 0.80 and 0.90


def test_completions_table_pairs_the_platform_with_the_bare_server_within_rounds() -> None:
    rows = [
        row(system, 8, round_no, tok_s, ttft, scenario="completions", loop="unpaced")
        for round_no, (ours, theirs) in enumerate([(95.0, 100.0), (100.0, 100.0), (50.0, 40.0)])
        for system, tok_s, ttft in (("platform", ours, 110.0), ("vllm-bare", theirs, 100.0))
    ]
    table = report.completions_table(rows)
    assert "| unpaced | 8 | 95.0 | 100.0 | 1.00x | 10 ms | 1.00x |" in table
