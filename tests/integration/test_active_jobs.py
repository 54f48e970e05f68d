"""The watcher's view of the active jobs: read from etcd once, then kept by a watch (issue 14): a steady tick
reads nothing; changes by another process arrive; a finished job leaves; a lost watch means one full read again."""

from __future__ import annotations

import asyncio
from typing import Any

import aetcd
import pytest

from runner.active import ActiveJobs, WatchedPrefix
from runner.records import JobRecord, JobState
from runner.state import StateStore
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _record(n: int) -> JobRecord:
    return JobRecord(job_id=f"job{n:04d}", uid="alice", template_name="t.txt", variables={})


class CountingStore(StateStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.full_reads = 0

    async def active_jobs(self) -> list[tuple[JobRecord, int]]:
        self.full_reads += 1
        return await super().active_jobs()


def _finished(record: JobRecord) -> JobRecord:
    record.state = JobState.FINISHED
    return record


def _running(record: JobRecord) -> JobRecord:
    record.state = JobState.RUNNING
    return record


async def test_steady_snapshots_read_etcd_once(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = CountingStore(etcd_client, etcd_prefix)
    for n in range(3):
        await store.create_job(_record(n), "tok")
    view = ActiveJobs(store)
    try:
        for _ in range(10):
            assert len(await view.snapshot()) == 3
        assert store.full_reads == 1
    finally:
        await view.close()


async def test_changes_by_another_process_arrive_and_finished_jobs_leave(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    view = ActiveJobs(StateStore(etcd_client, etcd_prefix))
    other = StateStore(etcd_client, etcd_prefix)  # writes the view's own store never sees
    try:
        assert await view.snapshot() == []
        await other.create_job(_record(1), "tok")
        await other.create_job(_record(2), "tok")
        await other.update_job("job0001", _running)

        async def both_seen() -> bool:
            jobs = {r.job_id: r for r, _ in await view.snapshot()}
            return set(jobs) == {"job0001", "job0002"} and jobs["job0001"].state is JobState.RUNNING

        await wait_until(both_seen, 30, "the view never saw the other process's writes")
        await other.update_job("job0002", _finished)

        async def left() -> bool:
            return [r.job_id for r, _ in await view.snapshot()] == ["job0001"]

        await wait_until(left, 30, "a finished job stayed in the view")
    finally:
        await view.close()


async def test_the_own_stores_writes_are_seen_at_once(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    view = ActiveJobs(store)
    try:
        await view.snapshot()
        await store.create_job(_record(1), "tok")
        assert [r.job_id for r, _ in await view.snapshot()] == ["job0001"]  # no wait: the store told the view
        await store.update_job("job0001", _finished)
        assert await view.snapshot() == []
    finally:
        await view.close()


async def test_a_lost_watch_means_one_full_read_with_what_changed_meanwhile(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store = CountingStore(etcd_client, etcd_prefix)
    view = ActiveJobs(store)
    other = StateStore(etcd_client, etcd_prefix)
    try:
        await view.snapshot()
        await view.close()  # the watch ends, as when etcd goes away
        assert not view.following
        await other.create_job(_record(7), "tok")
        assert [r.job_id for r, _ in await view.snapshot()] == ["job0007"]
        assert store.full_reads == 2
        assert view.following
    finally:
        await view.close()


async def test_a_shared_view_asked_at_once_reads_etcd_once(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = CountingStore(etcd_client, etcd_prefix)
    await store.create_job(_record(0), "tok")
    view = ActiveJobs(store)  # the job watcher, the keyhole watcher and the idle sweep start together
    try:
        results = await asyncio.gather(*(view.snapshot() for _ in range(3)))
        assert [len(r) for r in results] == [1, 1, 1]
        assert store.full_reads == 1
    finally:
        await view.close()


async def test_a_watched_prefix_follows_puts_and_deletes_and_reads_again_when_its_watch_is_lost(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    prefix = f"{etcd_prefix}/watched/".encode()
    await etcd_client.put(prefix + b"a", b"1")
    watched = WatchedPrefix(etcd_client, prefix, "test")
    try:
        assert {k: v for k, (v, _) in (await watched.items()).items()} == {prefix + b"a": b"1"}
        await etcd_client.put(prefix + b"b", b"2")
        await etcd_client.delete(prefix + b"a")

        async def followed() -> bool:
            return {k: v for k, (v, _) in (await watched.items()).items()} == {prefix + b"b": b"2"}

        await wait_until(followed, 10, "the watch's events never arrived")
        assert watched.full_reads == 1
        assert watched._task is not None
        watched._task.cancel()  # the watch is lost
        await asyncio.gather(watched._task, return_exceptions=True)
        await etcd_client.put(prefix + b"c", b"3")
        assert set(await watched.items()) == {prefix + b"b", prefix + b"c"}
        assert watched.full_reads == 2
    finally:
        await watched.close()
