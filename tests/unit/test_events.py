"""A job's follower: the newest record only, never an older one, a resync when the watch restarted."""

from __future__ import annotations

import asyncio

import pytest

from runner.events import RESYNC, Follower
from runner.records import JobRecord, JobState

pytestmark = pytest.mark.unit


def _record(state: JobState) -> JobRecord:
    return JobRecord(job_id="j", uid="alice", template_name="t.txt", variables={}, state=state)


async def test_a_follower_hands_over_the_newest_record_after_the_revision_asked() -> None:
    follower = Follower("j")
    follower.offer(5, _record(JobState.RUNNING))
    follower.offer(7, _record(JobState.AVAILABLE))
    follower.offer(6, _record(JobState.RUNNING))  # older than what it holds: dropped
    got = await follower.next(after=4)
    assert got != RESYNC
    assert got is not None
    assert got[0] == 7
    assert got[1].state is JobState.AVAILABLE
    assert await follower.next(after=7, timeout=0.01) is None


async def test_a_waiting_follower_wakes_on_an_offer_and_on_a_resync() -> None:
    follower = Follower("j")
    waiting = asyncio.create_task(follower.next(after=0))
    await asyncio.sleep(0)
    follower.offer(3, _record(JobState.RUNNING))
    got = await waiting
    assert got is not None
    assert got != RESYNC
    waiting = asyncio.create_task(follower.next(after=3))
    await asyncio.sleep(0)
    follower.resync()
    assert await waiting == RESYNC
    assert await follower.next(after=3, timeout=0.01) is None  # a resync is told once
