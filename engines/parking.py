"""Parks an idle CPU engine while a fine-tuning job trains on the same node.

An idle vLLM CPU engine is not quiet: its worker keeps a dozen gloo threads that each wake 100 times a
second, and each wake-up preempts one of the trainer's OpenMP threads (a training run beside an idle
engine measured 4% slower than with the engine stopped). vLLM's sleep mode, made for training beside an
engine, exists only for GPUs. Here the engine's processes are stopped (SIGSTOP) once the engine has been
idle for `idle_before_park_s` while a trainer holds the node's training lock, and continued (SIGCONT) the
moment a request or any other engine call comes, or when training ends.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil
import structlog

from engines.cpu_binding import node_state_dir

log = structlog.get_logger("engines.parking")

IDLE_BEFORE_PARK_S = 5.0
POLL_S = 1.0


def _training_lock() -> int:
    return os.open(node_state_dir() / "training.lock", os.O_CREAT | os.O_RDWR, 0o600)


@contextmanager
def training_in_progress() -> Iterator[None]:
    """Held by a trainer while it trains; the kernel drops it if the trainer dies."""
    handle = _training_lock()
    fcntl.flock(handle, fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(handle)


def training_active() -> bool:
    handle = _training_lock()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False


class EngineParking:
    """Stops `processes` while the engine is idle and training runs on the node; `awake()` wraps every
    use of the engine. A watcher thread makes the decisions, so the engine's event loop never waits."""

    def __init__(
        self,
        processes: list[psutil.Process],
        *,
        idle_before_park_s: float = IDLE_BEFORE_PARK_S,
        poll_s: float = POLL_S,
        training: Callable[[], bool] = training_active,
    ) -> None:
        self.processes = processes
        self.idle_before_park_s = idle_before_park_s
        self.training = training
        self.parked = False
        self.parks = 0
        self._busy = 0
        self._last_active = time.monotonic()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, args=(poll_s,), name="engine-parking", daemon=True)
        self._watcher.start()

    @contextmanager
    def awake(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
            self._continue()
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._last_active = time.monotonic()

    def tick(self) -> None:
        """One decision: park an idle engine while training runs, continue it when training has ended."""
        training = self.training()
        with self._lock:
            if self._closed.is_set():
                return
            if self.parked and not training:
                self._continue()
                log.info("engine_continued", reason="training_ended")
            elif not self.parked and training and self._busy == 0 and self._idle_for() >= self.idle_before_park_s:
                self._signal(signal.SIGSTOP)
                self.parked = True
                self.parks += 1
                log.info("engine_parked", reason="training_on_node")

    def _idle_for(self) -> float:
        return time.monotonic() - self._last_active

    def close(self) -> None:
        """Continues the engine for good (before it is shut down, so that it can exit)."""
        self._closed.set()
        with self._lock:
            self._continue()

    def _continue(self) -> None:
        """With the lock held: lets a parked engine run again."""
        if self.parked:
            self._signal(signal.SIGCONT)
            self.parked = False

    def _watch(self, poll_s: float) -> None:
        while not self._closed.wait(poll_s):
            try:
                self.tick()
            except Exception:  # the watcher must outlive any one odd moment (a vanished process, a lock error)
                log.exception("engine_parking_failed")

    def _signal(self, signum: signal.Signals) -> None:
        for process in self.processes:
            try:
                process.send_signal(signum)
            except psutil.NoSuchProcess:
                continue
