from __future__ import annotations

import asyncio

from jobs.slots import TrainingSlots


async def test_a_waiting_job_starts_when_the_cluster_grows() -> None:
    room = {"jobs": 1}
    slots = TrainingSlots(lambda: room["jobs"], recheck_s=0.05)
    started: list[str] = []

    async def job(name: str, done: asyncio.Event) -> None:
        async with slots.hold():
            started.append(name)
            await done.wait()

    first_done, second_done = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(job("first", first_done))
    second = asyncio.create_task(job("second", second_done))
    await asyncio.sleep(0.2)
    assert started == ["first"]
    room["jobs"] = 2  # a host joined
    await asyncio.sleep(0.2)
    assert started == ["first", "second"]
    first_done.set()
    second_done.set()
    await asyncio.gather(first, second)
    assert slots.held == 0


async def test_one_job_runs_even_on_a_cluster_with_no_room_and_the_next_starts_when_it_ends() -> None:
    slots = TrainingSlots(lambda: 0, recheck_s=10)  # the release, not the recheck, lets the second in
    order: list[str] = []

    async def job(name: str) -> None:
        async with slots.hold():
            order.append(f"{name} started")
            await asyncio.sleep(0.05)
            order.append(f"{name} ended")

    await asyncio.wait_for(asyncio.gather(job("a"), job("b")), timeout=2)
    assert order == ["a started", "a ended", "b started", "b ended"]


async def test_a_data_parallel_job_takes_a_slot_per_worker() -> None:
    slots = TrainingSlots(lambda: 2, recheck_s=10)
    order: list[str] = []

    async def job(name: str, workers: int, hold_s: float) -> None:
        async with slots.hold(workers):
            order.append(f"{name} started")
            await asyncio.sleep(hold_s)
            order.append(f"{name} ended")

    two_workers = asyncio.create_task(job("two workers", 2, 0.1))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(two_workers, job("one worker", 1, 0.01), job("three workers", 3, 0.01)), 2)
    assert order[:3] == ["two workers started", "two workers ended", "one worker started"]
    assert order.index("three workers started") > order.index("one worker ended")  # larger than the cluster: alone
