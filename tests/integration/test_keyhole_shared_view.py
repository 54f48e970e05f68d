"""The keyhole watcher and the idle sweep take the active jobs from the job watcher's view (issue 14): one view
per runner, so a steady keyhole tick reads no job record from etcd; a job ending is still cleaned up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.records import JobRecord, JobState
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, seen_running, watcher_settled
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "v" * 32


def _finished(record: JobRecord) -> JobRecord:
    record.state = JobState.FINISHED
    return record


async def test_one_view_is_shared_and_a_steady_keyhole_tick_reads_no_job_record(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = sim_cluster.compute_nodes[2]
    async with Runner(make_settings(**QUIET_WATCHER, idle_timeout_minutes=60)) as started:
        await watcher_settled(started)
        assert started.idle is not None
        view = started.job_watcher.view
        assert started.keyhole.watcher._view is view
        assert started.idle[0]._view is view
        for n in range(3):
            await started.store.create_job(seen_running(f"j-view{n}", node.name), TOKEN)
        data = protocol.build_request(
            job_id="j-view0", hostnames=[node.name], ports=1, token=TOKEN, timestamp=int(time.time())
        )
        await started.keyhole.service.handle(data)
        watcher = started.keyhole.watcher

        async def first_sweep_done() -> bool:  # the loop's first sweep reconciles, reading afresh
            return watcher.sweeps >= 1

        await wait_until(first_sweep_done, 15, "the keyhole watcher never swept")
        watcher.sweeps = 1  # not a reconciling sweep (which reads afresh, after listing the rules)
        full_reads = 0
        original = started.store.active_jobs

        async def counted() -> list[tuple[JobRecord, int]]:
            nonlocal full_reads
            full_reads += 1
            return await original()

        monkeypatch.setattr(started.store, "active_jobs", counted)
        port_reads = 0
        all_ports = started.keyhole.ports.all

        async def counted_ports() -> list[Any]:
            nonlocal port_reads
            port_reads += 1
            return await all_ports()

        monkeypatch.setattr(started.keyhole.ports, "all", counted_ports)
        await watcher.tick()  # the reservations' view is read in full once
        before = started.keyhole.ports._watched.full_reads
        for _ in range(5):
            await watcher.tick()
        await started.idle[0].tick()
        assert full_reads == 0
        assert view.full_reads == 1
        assert port_reads == 0
        assert started.keyhole.ports._watched.full_reads == before == 1

        await started.store.update_job("j-view0", _finished)  # the job ends: its reservation goes

        async def released() -> bool:
            await watcher.tick()
            return not [r for r in await started.keyhole.ports.all() if r.job_id == "j-view0"]

        await wait_until(released, 15, "the ended job's reservation was never released")
        assert full_reads == 0
        assert started.keyhole.ports._watched.full_reads == 1


async def test_a_job_created_elsewhere_after_the_snapshot_is_not_cleaned_up(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = sim_cluster.compute_nodes[2]
    async with Runner(make_settings(**QUIET_WATCHER)) as started:
        await watcher_settled(started)
        await started.store.create_job(seen_running("j-late", node.name), TOKEN)
        view = started.job_watcher.view
        hidden: Any = view.snapshot

        async def stale() -> list[tuple[JobRecord, int]]:  # a view that has not seen the job yet
            return [(r, rev) for r, rev in await hidden() if r.job_id != "j-late"]

        data = protocol.build_request(
            job_id="j-late", hostnames=[node.name], ports=1, token=TOKEN, timestamp=int(time.time())
        )
        await started.keyhole.service.handle(data)
        monkeypatch.setattr(view, "snapshot", stale)
        stats = await started.keyhole.watcher.tick()
        assert stats.cleaned_jobs == 0
        assert [r.job_id for r in await started.keyhole.ports.all()] == ["j-late"]
