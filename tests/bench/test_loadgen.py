import os
from pathlib import Path

from bench.loadgen import LOADGEN_NICE, load_generator_priority

AUTOGROUP = Path("/proc/self/autogroup")


def _group() -> str | None:
    return AUTOGROUP.read_text() if AUTOGROUP.exists() else None


def test_priority_is_raised_only_inside_the_block() -> None:
    nice, group = os.getpriority(os.PRIO_PROCESS, 0), _group()
    with load_generator_priority() as how:
        if how.startswith("normal"):  # no CAP_SYS_NICE here
            assert os.getpriority(os.PRIO_PROCESS, 0) == nice
        else:
            assert os.getpriority(os.PRIO_PROCESS, 0) == LOADGEN_NICE
            if group is not None:
                assert _group().split()[-1] == str(LOADGEN_NICE)
    assert os.getpriority(os.PRIO_PROCESS, 0) == nice
    assert _group() == group
