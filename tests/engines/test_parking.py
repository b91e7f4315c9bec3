"""EngineParking stops a real process while idle during training and continues it for every use."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engines.parking import EngineParking, training_active, training_in_progress


@pytest.fixture(autouse=True)
def node_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def engine_process() -> Iterator[psutil.Process]:
    child = subprocess.Popen(["sleep", "60"])
    yield psutil.Process(child.pid)
    child.kill()
    child.wait()


def stopped(process: psutil.Process) -> bool:
    """The process's state once the last signal has landed (delivery is asynchronous)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        status = process.status()
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_SLEEPING):
            time.sleep(0.05)  # settle: a SIGCONT may still be on its way
            return process.status() == psutil.STATUS_STOPPED
        time.sleep(0.01)
    return process.status() == psutil.STATUS_STOPPED


class Training:
    def __init__(self) -> None:
        self.active = True

    def __call__(self) -> bool:
        return self.active


def parking_for(process: psutil.Process, training: Training, idle_before_park_s: float = 0.0) -> EngineParking:
    # The watcher thread is kept out of the way (poll once an hour); the tests call tick() themselves.
    return EngineParking([process], idle_before_park_s=idle_before_park_s, poll_s=3600, training=training)


def test_training_lock_is_seen_while_held_and_released_after() -> None:
    assert not training_active()
    with training_in_progress(), training_in_progress():
        assert training_active()
    assert not training_active()


def test_idle_engine_parks_during_training_and_wakes_for_each_use(engine_process: psutil.Process) -> None:
    training = Training()
    parking = parking_for(engine_process, training)

    parking.tick()
    assert parking.parked and stopped(engine_process)

    with parking.awake():
        assert not stopped(engine_process)
        parking.tick()  # busy: stays awake
        assert not stopped(engine_process)
    parking.tick()
    assert stopped(engine_process) and parking.parks == 2

    training.active = False
    parking.tick()
    assert not parking.parked and not stopped(engine_process)
    parking.close()


def test_recently_used_engine_and_engine_without_training_stay_awake(engine_process: psutil.Process) -> None:
    training = Training()
    parking = parking_for(engine_process, training, idle_before_park_s=60)
    parking.tick()
    assert not stopped(engine_process)

    training.active = False
    idle = parking_for(engine_process, training)
    idle.tick()
    assert not stopped(engine_process)
    parking.close()
    idle.close()


def test_close_continues_the_engine_for_good(engine_process: psutil.Process) -> None:
    parking = parking_for(engine_process, Training())
    parking.tick()
    assert stopped(engine_process)
    parking.close()
    parking.tick()
    assert not stopped(engine_process)


def test_a_vanished_process_is_skipped(engine_process: psutil.Process) -> None:
    parking = parking_for(engine_process, Training())
    engine_process.kill()
    engine_process.wait()
    parking.tick()
    with parking.awake():
        pass
    parking.close()
