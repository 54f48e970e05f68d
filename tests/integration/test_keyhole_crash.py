"""A runner killed mid-request: after restart, reconciliation leaves exactly the right rules, and the job's
retry of the same request gets its forward without a second rule. Stray rules are removed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from runner.app import Runner
from runner.config import Settings
from runner.errors import RunnerError
from runner.gateway.iptables import ForwardRule
from runner.keyhole import protocol
from runner.records import Forward
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, all_rules, seen_running, slurm_running, watcher_settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TOKEN = "k" * 32


class Crash(BaseException):
    """Stands for the process dying: no handler code runs after it."""


def settings_for(make_settings: Callable[..., Settings]) -> Settings:
    # a 1 s command timeout makes a vanished handler's request eligible for takeover after 2 s
    ssh = {"command_timeout": 1, "connect_timeout": 5, "down_retry_after": 60}
    return make_settings(**QUIET_WATCHER, ssh=ssh | _keys(make_settings))


def _keys(make_settings: Callable[..., Settings]) -> dict[str, str | list[str]]:
    base = make_settings().ssh
    return {"client_keys": [str(k) for k in base.client_keys], "known_hosts": str(base.known_hosts)}


async def retry_until_answered(started: Runner, data: bytes) -> list[Forward]:
    deadline = time.monotonic() + 15
    while True:
        try:
            return await started.keyhole.service.handle(data)
        except RunnerError as exc:
            if exc.status < 500 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("step", ["before-rule", "after-rule"])
async def test_crash_then_restart_reconciles_and_the_retry_completes(
    step: str, make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = settings_for(make_settings)

    async def die(at: str) -> None:
        if at == step:
            raise Crash(at)

    async with Runner(settings, keyhole_fault=die) as first:
        # a real Slurm job: the second runner's watcher must find it still running
        record = await slurm_running(first, sim_cluster, "j-crash")
        host = record.details["node-list"]
        data = protocol.build_request(
            job_id="j-crash", hostnames=[host], ports=1, token=TOKEN, timestamp=int(time.time())
        )
        await first.store.create_job(record, TOKEN)
        with pytest.raises(Crash):
            await first.keyhole.service.handle(data)
        [placed] = await first.keyhole.ports.of_job("j-crash")
    assert placed.forward is not None
    rules_at_crash = [r for rs in (await all_rules(sim_cluster)).values() for r in rs]
    assert len(rules_at_crash) == (1 if step == "after-rule" else 0)

    async with Runner(settings) as second:
        second.keyhole.watcher.placement_grace = 0
        await second.keyhole.watcher.reconcile()
        expected = ForwardRule("j-crash", placed.port, placed.forward.internal_ip, placed.port)
        gateway = next(g.node for g in sim_cluster.gateway_nodes if g.internal_ip == placed.gateway_ssh_ip)
        assert await all_rules(sim_cluster) == {
            g.node: [expected] if g.node == gateway else [] for g in sim_cluster.gateway_nodes
        }

        [forward] = await retry_until_answered(second, data)
        assert forward.external_port == placed.port
        assert await all_rules(sim_cluster) == {
            g.node: [expected] if g.node == gateway else [] for g in sim_cluster.gateway_nodes
        }
        job = await second.store.get_job("j-crash")
        assert job is not None
        assert [f.external_port for f in job.forwards] == [placed.port]


async def test_reconciliation_removes_strays_and_restores_missing_rules(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = settings_for(make_settings)
    host = sim_cluster.compute_nodes[1].name
    async with Runner(settings) as started:
        await watcher_settled(started)
        await started.store.create_job(seen_running("j-kept", host), TOKEN)
        data = protocol.build_request(
            job_id="j-kept", hostnames=[host], ports=1, token=TOKEN, timestamp=int(time.time())
        )
        [forward] = await started.keyhole.service.handle(data)
        gw = next(g for g in sim_cluster.gateway_nodes if g.external_ip == forward.external_ip)
        assert gw.internal_ip == forward.gateway_ssh_ip
        conn = await sim_cluster.connect(gw.node)
        try:
            stray = "sudo -n iptables -t nat -A BWVISU -p tcp -m tcp --dport 51111 -m comment --comment bwvisu:ghost"
            await conn.run(f"{stray} -j DNAT --to-destination 10.9.9.9:51111", check=True)
            own = f"-p tcp -m tcp --dport {forward.external_port} -m comment --comment bwvisu:j-kept"
            await conn.run(
                f"sudo -n iptables -t nat -D BWVISU {own} -j DNAT --to-destination "
                f"{sim_cluster.hosts[host]}:{forward.internal_port}",
                check=True,
            )
        finally:
            conn.close()
            await conn.wait_closed()
        started.keyhole.watcher.placement_grace = 0
        await started.keyhole.watcher.reconcile()
        rules = await all_rules(sim_cluster)
        assert [(r.job_id, r.external_port) for r in rules[gw.node]] == [("j-kept", forward.external_port)]
