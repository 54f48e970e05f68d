"""Forwards written straight into etcd (by anyone who can reach it) are not acted on by the keyhole watcher.

The attacker writes port records and job forwards the service would never have written: a port outside
``keyholed-port-range``, a target that is no node of the job (a command node), a target outside the compute
networks. The reconciler writes none of their rules back (and removes one planted on a gateway), the readiness
sweep probes none of their targets, and each is logged; the job's own forward is untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.keyhole.ports import PortRecord
from runner.records import Forward
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, all_rules, slurm_running, watcher_settled
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

TOKEN = "g" * 32


def forged(job_id: str, port: int, target: str, gateway: str) -> PortRecord:
    forward = Forward(internal_port=port, external_port=port, external_ip=gateway, gateway_ssh_ip=gateway,
                      internal_ip=target)  # fmt: skip
    return PortRecord(job_id=job_id, port=port, forward=forward)


async def test_forged_records_are_neither_restored_nor_probed(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="runner.keyhole.guard")
    async with Runner(make_settings(**QUIET_WATCHER)) as started:
        await watcher_settled(started)
        record = await slurm_running(started, sim_cluster, "j-guarded")
        await started.store.create_job(record, TOKEN)
        node = record.details["node-list"]
        [own] = await started.keyhole.service.handle(
            protocol.build_request(
                job_id="j-guarded", hostnames=[node], ports=1, token=TOKEN, timestamp=int(time.time())
            )
        )
        gateway = sim_cluster.gateway_nodes[0].internal_ip
        command_node = sim_cluster.command_nodes[0].host
        node_address = next(c.address for c in sim_cluster.compute_nodes if c.name == node)
        low = started.settings.keyholed_port_range.min
        attacks = {
            "port outside the keyhole range": forged("j-guarded", 2222, node_address, gateway),
            "target is no node Slurm allocated to the job": forged("j-guarded", low + 7, command_node, gateway),
        }
        for planted in attacks.values():  # as an attacker with etcd access would: straight into the store
            key = started.keyhole.ports._key(planted.port)
            await started.etcd.put(key, planted.model_dump_json().encode())  # type: ignore[union-attr]
        started.keyhole.watcher.placement_grace = 0
        await started.keyhole.watcher.reconcile()

        rules = [r for rs in (await all_rules(sim_cluster)).values() for r in rs]
        assert [(r.job_id, r.external_port) for r in rules] == [("j-guarded", own.external_port)]
        for problem, planted in attacks.items():
            assert planted.forward is not None
            assert f"port {planted.port} -> {planted.forward.internal_ip}" in caplog.text
            assert problem in caplog.text

        # forwards planted in the job record itself: the sweep probes none of them
        sim_cluster.command_log.clear()
        bad = [p.forward for p in attacks.values() if p.forward is not None]
        await started.store.update_job("j-guarded", lambda r: r.model_copy(update={"forwards": [*r.forwards, *bad]}))
        before = started.keyhole.watcher.sweeps

        async def swept_twice() -> bool:
            return started.keyhole.watcher.sweeps >= before + 2

        await wait_until(swept_twice, 20, "the keyhole watcher did not sweep")
        probed = " ".join(" ".join(r.argv) for r in sim_cluster.command_log if r.name in {"nc", "sh", "timeout"})
        assert command_node not in probed
        assert " 2222" not in probed
