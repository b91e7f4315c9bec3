import os

import pytest

from engines import cpu_binding


def test_parse_and_format_cores() -> None:
    assert cpu_binding.parse_cores("0,2-3, 5") == [0, 2, 3, 5]
    assert cpu_binding.format_cores([0, 1]) == "0,1"


def test_node_cores_prefers_what_the_launcher_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu_binding.NODE_CORES_ENV, "0-3")
    assert cpu_binding.node_cores() == [0, 1, 2, 3]
    monkeypatch.delenv(cpu_binding.NODE_CORES_ENV)
    assert cpu_binding.node_cores() == sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cores", "replicas", "control", "per_slot"),
    [
        ([0, 1], 1, [1], [[0]]),  # the 2-core CI machine: vLLM computes on 0, everything else on 1
        ([0, 1], 2, None, [[0], [1]]),  # no core to spare: one core per replica, control plane floats
        ([0], 1, None, [[0]]),
        (list(range(8)), 2, [7], [[0, 1, 2], [3, 4, 5]]),
        (list(range(4)), 1, [3], [[0, 1, 2]]),
    ],
)
def test_core_plan(cores: list[int], replicas: int, control: list[int] | None, per_slot: list[list[int]]) -> None:
    assert cpu_binding.control_cores(cores, replicas) == control
    assert [cpu_binding.replica_cores(cores, replicas, slot) for slot in range(replicas)] == per_slot


def test_explicit_threads_and_extra_slots_wrap_around() -> None:
    assert cpu_binding.replica_cores(list(range(8)), 2, 1, threads=2) == [2, 3]
    assert cpu_binding.replica_cores([0, 1], 1, 3) == [0]


def test_slots_are_exclusive_until_released(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_binding.tempfile, "gettempdir", lambda: str(tmp_path))
    first = cpu_binding.CoreSlot.claim("test", slots=2)
    second = cpu_binding.CoreSlot.claim("test", slots=2)
    overflow = cpu_binding.CoreSlot.claim("test", slots=2)
    assert (first.index, second.index, overflow.index) == (0, 1, 2)
    first.release()
    assert cpu_binding.CoreSlot.claim("test", slots=2).index == 0


def test_thread_affinity_is_restored() -> None:
    before = os.sched_getaffinity(0)
    with cpu_binding.thread_affinity(sorted(before)[:1]):
        assert os.sched_getaffinity(0) == set(sorted(before)[:1])
    assert os.sched_getaffinity(0) == before
