"""The two clusters of the differential harness: the session's testbed and a simulator named like it.

The simulated cluster has the testbed's node, partition, cluster and controller names, users and uids, and its
first job id is the testbed's next one, so the two print the same texts wherever Slurm does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from containers.testbed import COMPAT_USER, Testbed, TestbedSpec
from runner.config import SshSettings
from runner.ssh import SshNode
from simulator.cluster import SimCluster
from simulator.config import ClusterConfig, NodeConfig, PartitionConfig, Role, TimingConfig, UserConfig
from tests.contract.differential import (
    FIRST_ROLES,
    Difference,
    Side,
    compare_outcomes,
    first_vocabulary,
    outcomes,
    produce_first_jobs,
    produce_jobs,
    run_all,
    submit,
    vocabulary,
)
from tests.contract.differential_gateway import gateway_differences
from tests.polling import wait_until


def sim_config(first_job_id: int, min_job_age_seconds: float = 30) -> ClusterConfig:
    nodes = [NodeConfig(name="command1", roles={Role.COMMAND})]
    nodes += [NodeConfig(name=f"compute{i}", roles={Role.COMPUTE}, cpus=16, memory_mb=4000) for i in (1, 2)]
    nodes += [NodeConfig(name="gateway1", roles={Role.GATEWAY})]
    return ClusterConfig(
        cluster_name="bwvisu", controller_name="controller", nodes=nodes,
        partitions=[PartitionConfig(name="batch", default=True)],
        users=[UserConfig(name="alice", uid=2001), UserConfig(name="bob", uid=2002)],
        service_user=COMPAT_USER, service_uid=2101, first_job_id=first_job_id,
        # a minute of a time limit lasts 3 s: only the real cluster needs to wait for a TIMEOUT
        timing=TimingConfig(kill_wait_seconds=2, min_job_age_seconds=min_job_age_seconds, minute_seconds=3),
    )  # fmt: skip


def testbed_side(testbed: Testbed) -> Side:
    settings = SshSettings(client_keys=[testbed.ssh_key.private_path], known_hosts=testbed.known_hosts_path)
    cmd = testbed.endpoints.command[0]
    assert cmd.ssh_host is not None
    assert cmd.ssh_port is not None

    async def fail_node(node: str) -> None:
        controller = testbed.node("controller")
        down = ["scontrol", "update", f"nodename={node}", "state=down", "reason=differential"]
        result = await asyncio.to_thread(controller.exec, down)
        assert result.exit_code == 0, result.stderr

        async def back() -> bool:  # ReturnToService=2: its slurmd registers again and the node is usable
            state = await asyncio.to_thread(controller.exec, ["sinfo", "-h", "-n", node, "-o", "%T"])
            if state.stdout.strip().startswith("down"):
                await asyncio.to_thread(controller.exec, ["scontrol", "update", f"nodename={node}", "state=resume"])
                return False
            return True

        await wait_until(back, 60, f"{node} back after its failure", interval=1)

    gw = testbed.endpoints.gateways[0]
    assert gw.ssh_host is not None
    assert gw.ssh_port is not None
    gateway = Side("real gateway", SshNode(gw.ssh_host, gw.ssh_port, COMPAT_USER, settings))
    node = SshNode(cmd.ssh_host, cmd.ssh_port, COMPAT_USER, settings)
    return Side("real", node, fail_node=fail_node, gateway=gateway)


@contextlib.asynccontextmanager
async def sim_side(first_job_id: int, min_job_age_seconds: float = 30) -> AsyncIterator[Side]:
    """``min_job_age_seconds``: how long ended jobs stay; shorter only where no slower cluster is waited for."""
    async with SimCluster(sim_config(first_job_id, min_job_age_seconds)) as cluster:
        settings = SshSettings(client_keys=[cluster.client_key_path], known_hosts=cluster.known_hosts_path)
        cmd = cluster.command_nodes[0]

        async def fail_node(node: str) -> None:
            cluster.fail_node(node)
            cluster.resume_node(node)

        gw = cluster.gateway_nodes[0]
        gateway = Side("sim gateway", SshNode(gw.host, gw.port, gw.user, settings))
        node = SshNode(cmd.host, cmd.port, cmd.user, settings)
        side = Side("sim", node, str(cluster.home_prefix), fail_node=fail_node, gateway=gateway)
        try:
            yield side
        finally:
            await side.close()


async def differences_on(real: Side) -> list[Difference]:
    """Both rounds of jobs and command lines on ``real`` and on a simulator whose first job id is real's first one;
    afterwards the real jobs are cancelled, so the session's testbed has its nodes free for the tiers that follow."""
    try:
        first = await submit(real, FIRST_ROLES[0])
        async with sim_side(int(first)) as sim:
            await submit(sim, FIRST_ROLES[0])
            # one side after the other, each asked while its ended jobs are fresh (MinJobAge): the real cluster's
            # TIMEOUT takes a minute or more, during which the simulator would purge its jobs
            await produce_first_jobs(real)
            real_out = await outcomes(real, first_vocabulary())
            await produce_first_jobs(sim)
            sim_out = await outcomes(sim, first_vocabulary())
            diffs = compare_outcomes(first_vocabulary(), real, real_out, sim, sim_out)
            await asyncio.gather(produce_jobs(real), produce_jobs(sim))
            diffs += await run_all(real, sim, vocabulary())
            assert real.gateway is not None
            assert sim.gateway is not None
            return diffs + await gateway_differences(real.gateway, sim.gateway)
    finally:
        await real.run(f"sudo -n -u alice scancel {' '.join(real.jobs.values())}")


@contextlib.asynccontextmanager
async def both_sides() -> AsyncIterator[Side]:
    """A testbed of its own, as the session's one is for the test tier."""
    with Testbed(TestbedSpec(compute=2, gateways=1, command=1, client=False)) as testbed:
        real = testbed_side(testbed)
        try:
            yield real
        finally:
            await real.close()
