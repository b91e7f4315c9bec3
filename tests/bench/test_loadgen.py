import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bench.loadgen
from bench.loadgen import LOADGEN_NICE, load_generator_priority

AUTOGROUP = Path("/proc/self/autogroup")
ROOT = Path(__file__).resolve().parents[2]
START_NICE = 3
"""Where the privileged tests put this thread and its session group first: neither 0 nor LOADGEN_NICE, so
a block that does not raise the priority, or that restores a default instead of what it found, shows."""


def nice() -> int:
    """This thread's niceness as the kernel has it."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def group_nice() -> int | None:
    """The session group's niceness as the kernel shows it; None where it has no autogroups, or shows none."""
    try:
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def may_raise_priority() -> bool:
    """Whether this process may raise its own and its session group's priority (CAP_SYS_NICE, and a kernel
    that lets it write the group): tried here directly, then undone."""
    previous, previous_group = nice(), group_nice()
    try:
        os.setpriority(os.PRIO_PROCESS, 0, LOADGEN_NICE)
        if previous_group is not None:
            AUTOGROUP.write_text(str(LOADGEN_NICE))
            AUTOGROUP.write_text(str(previous_group))
    except PermissionError:
        return False
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, previous)  # back to where it was: raising is allowed, or never happened
    return True


@pytest.fixture
def known_start() -> Iterator[None]:
    """This thread and its session group at START_NICE for the test; what they had before, afterwards."""
    if not may_raise_priority():
        pytest.skip("raising the priority needs CAP_SYS_NICE (the fallback has a test of its own)")
    previous, previous_group = nice(), group_nice()
    os.setpriority(os.PRIO_PROCESS, 0, START_NICE)
    if previous_group is not None:
        AUTOGROUP.write_text(str(START_NICE))
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, previous)
        if previous_group is not None:
            AUTOGROUP.write_text(str(previous_group))


@pytest.mark.usefixtures("known_start")
def test_priority_is_raised_inside_the_block_and_restored_after() -> None:
    has_group = group_nice() is not None
    assert (nice(), group_nice()) == (START_NICE, START_NICE if has_group else None)
    with load_generator_priority():
        assert nice() == LOADGEN_NICE
        assert group_nice() == (LOADGEN_NICE if has_group else None)
    assert nice() == START_NICE
    assert group_nice() == (START_NICE if has_group else None)


# Runs the block in a process without CAP_SYS_NICE (root gives it up by becoming nobody) and with RLIMIT_NICE 0
# (no unprivileged raising either), at nice 5, and prints what the kernel showed around the block; exits 77
# where it cannot set that up.
_WITHOUT_PERMISSION = """
import json, os, resource
from pathlib import Path
from bench.loadgen import load_generator_priority

def state():
    try:
        group = Path("/proc/self/autogroup").read_text().strip() or None
    except OSError:
        group = None
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0), "group": group}

try:
    os.setpriority(os.PRIO_PROCESS, 0, 5)
    resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
except (OSError, ValueError):
    raise SystemExit(77) from None
capabilities = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff:"))
if int(capabilities.split()[1], 16) >> 23 & 1:  # CAP_SYS_NICE kept
    raise SystemExit(77)
seen = {"before": state()}
with load_generator_priority():
    seen["inside"] = state()
seen["after"] = state()
print(json.dumps(seen))
"""


def test_without_the_permission_the_block_runs_at_the_priority_it_had() -> None:
    group_before = AUTOGROUP.read_text() if AUTOGROUP.exists() else None
    child = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PERMISSION], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    if child.returncode == 77:
        pytest.skip("cannot run a process without CAP_SYS_NICE here")
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout)
    assert seen["before"]["nice"] == 5
    assert seen["inside"] == seen["before"]
    assert seen["after"] == seen["before"]
    # The session group is this test's too: nothing was written to it.
    assert (AUTOGROUP.read_text() if AUTOGROUP.exists() else None) == group_before


class _LockedGroup:
    """A session group this process can read but not raise, as where CAP_SYS_NICE does not reach the group
    (RLIMIT_NICE lets a thread raise itself, never its group)."""

    def read_text(self) -> str:
        return "/autogroup-1 nice 0\n"

    def write_text(self, text: str) -> int:
        raise PermissionError(13, "Permission denied")


@pytest.mark.usefixtures("known_start")
def test_a_group_it_may_not_raise_puts_the_raised_thread_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread is raised before the group is written; when the group refuses, the block must not run
    with the thread alone raised, nor leave it raised."""
    monkeypatch.setattr(bench.loadgen, "_AUTOGROUP", _LockedGroup())
    with load_generator_priority():
        assert nice() == START_NICE
    assert nice() == START_NICE


def test_an_empty_group_file_is_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some containers show /proc/self/autogroup empty; the block must run and write nothing there."""
    empty = tmp_path / "autogroup"
    empty.write_text("")
    monkeypatch.setattr(bench.loadgen, "_AUTOGROUP", empty)
    with load_generator_priority() as how:
        assert "session group" not in how
    assert empty.read_text() == ""
