import os
from pathlib import Path

import pytest

import bench.loadgen
from bench.loadgen import LOADGEN_NICE, load_generator_priority

AUTOGROUP = Path("/proc/self/autogroup")


def _group() -> str | None:
    """The session group's line as the kernel shows it; None (or empty) where it has no autogroups."""
    return AUTOGROUP.read_text() if AUTOGROUP.exists() else None


def test_priority_is_raised_only_inside_the_block() -> None:
    nice, group = os.getpriority(os.PRIO_PROCESS, 0), _group()
    with load_generator_priority() as how:
        if how.startswith("normal"):  # no CAP_SYS_NICE here
            assert os.getpriority(os.PRIO_PROCESS, 0) == nice
        else:
            assert os.getpriority(os.PRIO_PROCESS, 0) == LOADGEN_NICE
        if "session group" in how:
            assert (_group() or "").split()[-1] == str(LOADGEN_NICE)
        else:  # no autogroups (or an unreadable one, as in some containers): left untouched
            assert _group() == group
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice
    assert _group() == group


def test_an_empty_group_file_is_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some containers show /proc/self/autogroup empty; the block must run and write nothing there."""
    empty = tmp_path / "autogroup"
    empty.write_text("")
    monkeypatch.setattr(bench.loadgen, "_AUTOGROUP", empty)
    with load_generator_priority() as how:
        assert "session group" not in how
    assert empty.read_text() == ""
