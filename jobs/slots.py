"""How many jobs train at once: as many as the cluster has room for now, a data-parallel job counting once per
worker. A Ray cluster grows when hosts join and shrinks when they leave, so a waiting job reads the capacity again
every few seconds, not once at start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

RECHECK_S = 5.0


class TrainingSlots:
    def __init__(self, capacity: Callable[[], int], *, recheck_s: float = RECHECK_S) -> None:
        """`capacity`: how many trainers fit now; it may block (it asks Ray), so it runs in a thread. One job always
        gets its slots: on a cluster with too little room its trainers wait in Ray's queue for hosts."""
        self.capacity = capacity
        self.recheck_s = recheck_s
        self.held = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int = 1) -> AsyncIterator[None]:
        """Holds `size` slots (a job's workers) while the job trains; a job larger than the cluster runs alone."""
        async with self._changed:
            while self.held and self.held + size > await asyncio.to_thread(self.capacity):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), self.recheck_s)
            self.held += size
        try:
            yield
        finally:
            async with self._changed:
                self.held -= size
                self._changed.notify_all()
