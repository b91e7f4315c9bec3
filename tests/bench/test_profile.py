"""Reading py-spy's raw samples: a frame counts once per sample however often it recurs on the stack."""

from pathlib import Path

from bench.lora_floor import layer_shapes
from bench.profile import inclusive_shares
from bench.report import profile_table


def test_inclusive_shares_count_each_frame_once_per_sample(tmp_path: Path) -> None:
    raw = tmp_path / "worker.txt"
    raw.write_text(
        "main (a.py:1);forward (m.py:10);forward (m.py:12);gemm (k.py:3) 3\n"
        "main (a.py:1);forward (m.py:10);lora (l.py:7) 1\n"
        "main (a.py:2) 1\n"
    )
    shares = dict((frame, share) for share, frame in inclusive_shares(raw))
    assert shares == {"main (a.py)": 100.0, "forward (m.py)": 80.0, "gemm (k.py)": 60.0, "lora (l.py)": 20.0}


def test_the_floors_layer_shapes_are_vllms_merged_linears() -> None:
    config = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3}
    assert layer_shapes(config) == [(576, (576, 192, 192)), (576, (576,)), (576, (1536, 1536)), (1536, (576,))]


def test_the_profile_table_shows_the_lora_floor_beside_the_samples() -> None:
    rows = [
        {"scenario": "profile", "system": "platform", "round": 0, "tok_s_while_sampled": 160.0}
        | {"folder": "/x/2026-11-29-vm"},
        {"scenario": "profile", "system": "lora-ops", "adapters": 8, "rank": 8, "tokens": 8, "adapter_mb": 74.5}
        | {"lora_ms": 9.5, "read_floor_ms": 2.5, "base_linear_ms": 41.8},
    ]
    table = profile_table(rows)
    assert "`bench/results/profiles/2026-11-29-vm/platform-summary.md`" in table
    assert "| 9.5 ms | 2.5 ms | 41.8 ms |" in table
