"""The etcd state store on a real etcd: create-once, compare-and-swap updates, active/done moves, leadership."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aetcd
import pytest

from runner.errors import Conflict
from runner.leader import Leadership
from runner.records import Change, JobRecord, JobState, SubmitPhase, submitted_as
from runner.state import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def record(job_id: str = "j1") -> JobRecord:
    return JobRecord(job_id=job_id, uid="alice", template_name="t.txt", variables={"a": "1"})


async def test_create_is_once_only(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(record(), "tok")
    with pytest.raises(Conflict):
        await store.create_job(record(), "tok2")
    assert await store.get_token("j1") == "tok"


async def test_finishing_moves_the_record_and_drops_the_token(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(record(), "tok")
    assert await store.active_ids() == ["j1"]

    def finish(r: JobRecord) -> JobRecord:
        r.state = JobState.FINISHED
        return r

    await store.update_job("j1", finish)
    assert await store.active_ids() == []
    got = await store.get_job("j1")
    assert got is not None
    assert got.state is JobState.FINISHED
    assert await store.get_token("j1") is None
    assert await store.update_job("j1", finish) is None  # finished jobs are not active any more


async def test_concurrent_updates_are_never_lost(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(record(), "tok")

    def add(key: str) -> Callable[[JobRecord], JobRecord]:
        def change(r: JobRecord) -> JobRecord:
            r.details[key] = "x"
            return r

        return change

    await asyncio.gather(*(store.update_job("j1", add(f"k{i}")) for i in range(10)))
    got = await store.get_job("j1")
    assert got is not None
    assert sorted(got.details) == sorted(f"k{i}" for i in range(10))


async def test_stale_known_revision_is_retried(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(record(), "tok")
    [(old, rev)] = await store.active_jobs()

    def touch(r: JobRecord) -> JobRecord:
        r.details["first"] = "1"
        return r

    await store.update_job("j1", touch)

    def second(r: JobRecord) -> JobRecord:
        r.details["second"] = "2"
        return r

    stored = await store.update_job("j1", second, known=(old, rev))
    assert stored is not None
    assert stored.details == {"first": "1", "second": "2"}


async def test_only_one_leader_and_takeover_on_resign(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    a = Leadership(etcd_client, f"{etcd_prefix}/leader", ttl=2, identity="a")
    b = Leadership(etcd_client, f"{etcd_prefix}/leader", ttl=2, identity="b")
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.wait_leader(), 10)
    task_b = asyncio.create_task(b.run())
    try:
        # b campaigns at least once while a holds the key
        for _ in range(100):
            await asyncio.sleep(0.05)
            assert not (a.is_leader and b.is_leader)
        assert not b.is_leader
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
        await asyncio.wait_for(b.wait_leader(), 10)
        assert (b.is_leader, a.is_leader) == (True, False)
    finally:
        task_a.cancel()
        task_b.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)


async def test_create_returns_the_revision_update_can_start_from(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    rec = record()
    revision = await store.create_job(rec, "tok")
    [(_, stored_revision)] = await store.active_jobs()
    assert revision == stored_revision

    def touch(r: JobRecord) -> JobRecord:
        r.details["x"] = "1"
        return r

    stored = await store.update_job("j1", touch, known=(rec, revision))
    assert stored is not None
    assert stored.details == {"x": "1"}


async def test_many_updates_are_batched_and_a_conflict_is_redone_alone(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    for i in range(70):
        await store.create_job(record(f"j{i:02d}"), "tok")
    jobs = await store.active_jobs()

    def running(r: JobRecord) -> JobRecord:
        r.state = JobState.RUNNING
        return r

    # a concurrent writer touches one record after it was read: its batch must not overwrite that
    def note(r: JobRecord) -> JobRecord:
        r.details["other"] = "writer"
        return r

    await store.update_job("j05", note)
    written = await store.update_jobs([(r, rev, running) for r, rev in jobs])
    assert written == 70
    stored = {r.job_id: r for r, _ in await store.active_jobs()}
    assert all(r.state is JobState.RUNNING for r in stored.values())
    assert stored["j05"].details == {"other": "writer"}
    assert await store.update_jobs([(r, rev, running) for r, rev in await store.active_jobs()]) == 0


# A job record with a forward exactly as the runner has always stored it: "gateway" is the gateway's SSH address.
STORED_JOB = (
    b'{"job_id":"j-1","uid":"alice","template_name":"t","variables":{"a":"b"},"state":"available",'
    b'"submit_phase":"pending","slurm_id":null,"slurm_state":null,"scheduler_unknown":false,'
    b'"cancel_requested":false,"details":{},"forwards":[{"internal_port":50001,"external_port":50001,'
    b'"external_ip":"192.0.2.7","gateway":"10.0.0.1","internal_ip":"10.1.0.5","reachable":true}],'
    b'"session_url":null,"created_at":1.5,"updated_at":2.5}'
)


async def test_a_record_in_the_stored_shape_is_read_and_written_back_unchanged(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await etcd_client.put(f"{etcd_prefix}/jobs/active/j-1".encode(), STORED_JOB)
    got = await store.get_job("j-1")
    assert got is not None
    [forward] = got.forwards
    assert (forward.gateway_ssh_ip, forward.external_ip, forward.internal_ip) == ("10.0.0.1", "192.0.2.7", "10.1.0.5")
    assert (forward.internal_port, forward.external_port, forward.reachable) == (50001, 50001, True)
    assert got.model_dump_json().encode() == STORED_JOB

    def touch(r: JobRecord) -> JobRecord:
        r.details["note"] = "x"
        return r

    await store.update_job("j-1", touch)
    stored = await etcd_client.get(f"{etcd_prefix}/jobs/active/j-1".encode())
    assert stored is not None
    assert (
        b'"forwards":[{"internal_port":50001,"external_port":50001,"external_ip":"192.0.2.7","gateway":"10.0.0.1",'
        in (stored.value)
    )


def _held(store: StateStore) -> asyncio.Event:
    """Hold the store's later writes (they wait on the returned event); other updates go through."""
    release = asyncio.Event()
    original = store.update_jobs

    async def update_jobs(changes: list[tuple[JobRecord, int, Change]], *, pending: bool = True) -> int:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "state-later-writes":
            await release.wait()
        return await original(changes, pending=pending)

    store.update_jobs = update_jobs  # type: ignore[method-assign]
    return release


async def test_a_later_change_is_read_back_at_once_and_stored_once_released(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store, other = StateStore(etcd_client, etcd_prefix), StateStore(etcd_client, etcd_prefix)
    release = _held(store)
    revision = await store.create_job(record(), "tok")
    store.update_later(record(), revision, submitted_as("4242"))
    # this store reads it back at once; etcd (another store) does not have it yet
    seen = await store.get_job("j1")
    assert seen is not None
    assert seen.slurm_id == "4242"
    assert seen.submit_phase is SubmitPhase.SUBMITTED
    stored = await other.get_job("j1")
    assert stored is not None
    assert stored.slurm_id is None
    release.set()
    await store.close()
    stored = await other.get_job("j1")
    assert stored is not None
    assert stored.slurm_id == "4242"
    assert stored.details["slurm-job-id"] == "4242"


async def test_an_update_meanwhile_writes_the_later_change_too_and_nothing_is_lost(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store, other = StateStore(etcd_client, etcd_prefix), StateStore(etcd_client, etcd_prefix)
    release = _held(store)
    revision = await store.create_job(record(), "tok")
    store.update_later(record(), revision, submitted_as("7"))

    def note(r: JobRecord) -> JobRecord:
        r.cancel_requested = True
        return r

    await store.update_job("j1", note)  # e.g. a cancel before the id was stored: it is written with the id
    stored = await other.get_job("j1")
    assert stored is not None
    assert (stored.slurm_id, stored.cancel_requested) == ("7", True)
    release.set()  # the later write meets a changed record: redone on what is stored, it changes nothing
    await store.close()
    stored = await other.get_job("j1")
    assert stored is not None
    assert (stored.slurm_id, stored.cancel_requested) == ("7", True)


async def test_a_later_change_is_not_lost_to_another_process_writing_meanwhile(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store, other = StateStore(etcd_client, etcd_prefix), StateStore(etcd_client, etcd_prefix)
    release = _held(store)
    revision = await store.create_job(record(), "tok")
    store.update_later(record(), revision, submitted_as("8"))

    def note(r: JobRecord) -> JobRecord:
        r.details["other"] = "writer"
        return r

    await other.update_job("j1", note)  # knows nothing of the pending id
    release.set()
    await store.close()
    stored = await other.get_job("j1")
    assert stored is not None
    assert stored.slurm_id == "8"
    assert stored.details["other"] == "writer"


async def test_later_changes_pending_together_share_transactions(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    release = _held(store)
    revisions = {f"j{i:02d}": await store.create_job(record(f"j{i:02d}"), "tok") for i in range(150)}
    for job_id, revision in revisions.items():
        store.update_later(record(job_id), revision, submitted_as(f"{job_id}-slurm"))
    release.set()
    await store.close()
    jobs = await store.active_jobs()
    assert {r.slurm_id for r, _ in jobs} == {f"{job_id}-slurm" for job_id in revisions}
    # 150 records, an operation each, at most 128 operations per transaction: two transactions, not 150
    assert len({rev for _, rev in jobs}) == 2


async def test_transactions_hold_up_to_etcds_128_operations(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    for i in range(240):
        await store.create_job(record(f"j{i:03d}"), "tok")
    jobs = sorted(await store.active_jobs(), key=lambda job: job[0].job_id)

    def running(r: JobRecord) -> JobRecord:
        r.state = JobState.RUNNING
        return r

    def finished(r: JobRecord) -> JobRecord:
        r.state = JobState.FINISHED
        return r

    # 200 writes of an active record (one operation each): 128 + 72; 40 finished jobs (four each): 32 + 8
    changes: list[tuple[JobRecord, int, Change]] = [
        (r, rev, running if i < 200 else finished) for i, (r, rev) in enumerate(jobs)
    ]
    assert await store.update_jobs(changes) == 240
    active = await store.active_jobs()
    assert len(active) == 200
    assert len({rev for _, rev in active}) == 2
    done = [await store.read_job(f"j{i:03d}") for i in range(200, 240)]
    assert len({found[1] for found in done if found is not None}) == 2


async def test_a_change_never_edits_the_record_it_was_given(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    # the watcher's view holds the records it passes in: a change that edits details in place must edit a copy
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(record(), "tok")
    [(held, revision)] = await store.active_jobs()

    def note(r: JobRecord) -> JobRecord:
        r.details["x"] = "1"
        r.variables["a"] = "2"
        return r

    assert await store.update_jobs([(held, revision, note)]) == 1
    assert held.details == {}
    assert held.variables == {"a": "1"}
    stored = await store.get_job("j1")
    assert stored is not None
    assert (stored.details, stored.variables) == ({"x": "1"}, {"a": "2"})
