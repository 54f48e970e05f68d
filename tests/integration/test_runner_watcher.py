"""The job watcher: one squeue per tick for all jobs, and only one watcher acting among runners sharing an etcd."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aetcd
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.leader import Leadership
from simulator import SimCluster
from simulator.testing import wait_for
from tests.integration.conftest import api_client
from tests.integration.jobs_support import submit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_one_squeue_per_tick_for_all_jobs(
    sim_cluster: SimCluster, make_settings: Callable[..., Settings], etcd_client: aetcd.Client
) -> None:
    # Another process holds the watchers' leadership, so the test alone drives ticks.
    settings = make_settings()
    holder = Leadership(etcd_client, f"{settings.etcd_prefix}/leader/watchers", ttl=5, identity="other")
    holding = asyncio.create_task(holder.run())
    try:
        await asyncio.wait_for(holder.wait_leader(), 30)
        async with Runner(settings) as runner, api_client(runner) as api:
            for _ in range(30):
                await submit(api)
            assert runner.watch_loop.iterations == 0
            sim_cluster.command_log.clear()
            stats = await runner.job_watcher.tick()
            assert stats.queried == 30
            command_nodes = {n.node for n in sim_cluster.command_nodes}
            slurm_calls = [r for r in sim_cluster.command_log if r.node in command_nodes]
            assert [r.name for r in slurm_calls] == ["squeue"]  # nothing else: no sacct while nothing ended
            again = await runner.job_watcher.tick()
            assert (again.queried, again.updated) == (30, 0)  # nothing changed, nothing written
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)


async def test_only_one_of_two_runners_watches(sim_cluster: SimCluster, make_settings: Callable[..., Settings]) -> None:
    # Two processes: the same etcd and cluster, each its own keyhole listener.
    async with Runner(make_settings()) as first, Runner(make_settings()) as second, api_client(first) as api:
        await wait_for(lambda: first.leadership.is_leader or second.leadership.is_leader, timeout=30)
        job_id = await submit(api)
        # jobs submitted through either runner are watched by the leader
        await wait_for(lambda: first.watch_loop.iterations + second.watch_loop.iterations > 5, timeout=30)
        leaders = [r for r in (first, second) if r.leadership.is_leader]
        followers = [r for r in (first, second) if not r.leadership.is_leader]
        assert len(leaders) == 1
        before = followers[0].watch_loop.iterations
        ticks = leaders[0].watch_loop.iterations
        await wait_for(lambda: leaders[0].watch_loop.iterations > ticks + 5, timeout=30)
        assert followers[0].watch_loop.iterations == before
        body = (await api.get(f"/jobs/{job_id}")).json()
        assert body["state"] in {"submitted", "running"}


async def test_a_runner_that_cannot_start_closes_what_it_opened(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    endpoint = settings.keyholed_servers[0]
    with socket.socket() as busy:
        busy.bind((endpoint.ip, endpoint.port))
        busy.listen()
        runner = Runner(settings)
        with pytest.raises(OSError, match="in use"):
            await runner.__aenter__()
    assert runner.etcd is not None
    assert runner.etcd.channel is None  # the etcd client was closed again
    assert not [t for t in asyncio.all_tasks() if t.get_name() in {"leadership", "job-watcher", "keyhole-watcher"}]
