"""Reading py-spy's raw samples: a frame counts once per sample however often it recurs on the stack."""

from pathlib import Path

from bench.profile import inclusive_shares


def test_inclusive_shares_count_each_frame_once_per_sample(tmp_path: Path) -> None:
    raw = tmp_path / "worker.txt"
    raw.write_text(
        "main (a.py:1);forward (m.py:10);forward (m.py:12);gemm (k.py:3) 3\n"
        "main (a.py:1);forward (m.py:10);lora (l.py:7) 1\n"
        "main (a.py:2) 1\n"
    )
    shares = dict((frame, share) for share, frame in inclusive_shares(raw))
    assert shares == {"main (a.py)": 100.0, "forward (m.py)": 80.0, "gemm (k.py)": 60.0, "lora (l.py)": 20.0}
