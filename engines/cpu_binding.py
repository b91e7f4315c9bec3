"""Where processes run on a CPU-only host.

vLLM on CPU binds its compute threads to a set of cores and leaves the rest for its scheduler. The
platform adds Ray, the gateway and the HTTP proxy, which would otherwise preempt those compute threads.
So on a node it owns, the launcher confines its own processes (and so Ray's) to the cores vLLM leaves
free, each engine replica on a node claims its own compute cores, and training spreads over every core.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NODE_CORES_ENV = "LLM_PLATFORM_NODE_CORES"
"""Set by the launcher before it narrows its own affinity, so Ray workers on its node know every core."""


def node_cores() -> list[int]:
    """Every core this node lets the platform use (not only the cores this thread is confined to)."""
    value = os.environ.get(NODE_CORES_ENV)
    if value:
        return parse_cores(value)
    return sorted(os.sched_getaffinity(0))


def host_has_gpu() -> bool:
    """An NVIDIA GPU is visible to this host (its driver lists one)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def parse_cores(value: str) -> list[int]:
    """`"0,2-3"` → `[0, 2, 3]`."""
    cores: set[int] = set()
    for part in value.split(","):
        first, _, last = part.strip().partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return sorted(cores)


def format_cores(cores: list[int]) -> str:
    return ",".join(str(core) for core in cores)


def control_cores(cores: list[int], engine_replicas: int) -> list[int] | None:
    """The core the control plane is confined to: the last one, when every replica still gets one of the
    others (vLLM's own automatic binding reserves the same core). None when there is no core to spare."""
    if len(cores) - 1 >= engine_replicas:
        return cores[-1:]
    return None


def replica_cores(cores: list[int], engine_replicas: int, slot: int, threads: int = 0) -> list[int]:
    """The compute cores of the replica holding `slot` on this node: an equal share of the cores the
    control plane leaves, or `threads` of them when set."""
    usable = cores[:-1] if control_cores(cores, engine_replicas) else cores
    share = threads or max(1, len(usable) // engine_replicas)
    start = (slot * share) % len(usable)
    return (usable[start:] + usable[:start])[:share]


def node_state_dir() -> Path:
    """Where this user's platform processes on one node coordinate through lock files."""
    directory = Path(tempfile.gettempdir()) / f"llm-platform-{os.getuid()}"
    directory.mkdir(exist_ok=True)
    return directory


class CoreSlot:
    """A replica's slot on its node, held through an exclusive lock on a node-local file for the life of
    the process, so a replica that dies frees its cores for the one that replaces it."""

    def __init__(self, index: int, handle: int) -> None:
        self.index = index
        self._handle = handle

    @classmethod
    def claim(cls, group: str, *, slots: int) -> CoreSlot:
        directory = node_state_dir()
        for index in range(slots):
            handle = os.open(directory / f"{group}-slot-{index}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            return cls(index, handle)
        return cls(slots, os.open(os.devnull, os.O_RDONLY))

    def release(self) -> None:
        os.close(self._handle)


@contextmanager
def thread_affinity(cores: list[int]) -> Iterator[None]:
    """Runs the block with this thread on `cores`; processes it starts inherit them."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def spread_process(cores: list[int]) -> None:
    """Lets every thread of this process run on `cores`."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cores)
        except (ProcessLookupError, PermissionError):
            continue
