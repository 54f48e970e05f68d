"""Background loops: survive step errors, wake on demand, and stop on cancel even if a step swallows it."""

from __future__ import annotations

import asyncio

import pytest

from runner.loops import Loop

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


async def test_step_errors_are_survived() -> None:
    calls = 0
    third = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        if calls == 3:
            third.set()

    loop = Loop("t", step, interval=0.01)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(third.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.errors == 1


async def test_wake_runs_the_next_step_before_the_interval() -> None:
    first = asyncio.Event()
    ran = asyncio.Event()
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        (first if calls == 1 else ran).set()

    loop = Loop("t", step, interval=3600)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(first.wait(), 10)
    loop.wake()
    await asyncio.wait_for(ran.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_cancellation_swallowed_by_a_step_still_stops_the_loop() -> None:
    entered = asyncio.Event()
    gate_open = asyncio.Event()
    gate_open.set()

    async def swallowing_step() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return  # a library that eats the cancellation

    async def gate() -> None:
        await gate_open.wait()

    task = asyncio.create_task(Loop("t", swallowing_step, interval=0.01, gate=gate).run())
    await entered.wait()
    gate_open.clear()  # had the cancellation been lost, the loop would now wait here for ever
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_a_burst_of_wakes_costs_few_steps() -> None:
    steps = 0
    wakes = 0

    async def step() -> None:
        nonlocal steps
        steps += 1

    loop = Loop("t", step, interval=3600, min_gap=0.2)
    task = asyncio.create_task(loop.run())
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    # wake it constantly for a while: without the gap every wake-up would be a step
    while steps < 2 or loop_time() - start < 0.5:
        loop.wake()
        wakes += 1
        await asyncio.sleep(0.001)
    elapsed = loop_time() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert steps <= elapsed / 0.2 + 1 < wakes
