"""The two clusters of the differential harness: the session's testbed and a simulator named like it.

The simulated cluster has the testbed's node, partition, cluster and controller names, users and uids, and its
first job id is the testbed's next one, so the two print the same texts wherever Slurm does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from containers.testbed import COMPAT_USER, Testbed, TestbedSpec
from runner.config import SshSettings
from runner.ssh import SshNode
from simulator.cluster import SimCluster
from simulator.config import ClusterConfig, NodeConfig, PartitionConfig, Role, TimingConfig, UserConfig
from tests.contract.differential import Side, produce_jobs


def sim_config(first_job_id: int, home_prefix: str | None = None) -> ClusterConfig:
    nodes = [NodeConfig(name="command1", roles={Role.COMMAND})]
    nodes += [NodeConfig(name=f"compute{i}", roles={Role.COMPUTE}, cpus=16) for i in (1, 2)]
    nodes += [NodeConfig(name="gateway1", roles={Role.GATEWAY})]
    return ClusterConfig(
        cluster_name="bwvisu", controller_name="controller", nodes=nodes,
        partitions=[PartitionConfig(name="batch", default=True)],
        users=[UserConfig(name="alice", uid=2001), UserConfig(name="bob", uid=2002)],
        service_user=COMPAT_USER, service_uid=2101, first_job_id=first_job_id,
        timing=TimingConfig(kill_wait_seconds=2, min_job_age_seconds=30),
    )  # fmt: skip


def testbed_side(testbed: Testbed) -> Side:
    settings = SshSettings(client_keys=[testbed.ssh_key.private_path], known_hosts=testbed.known_hosts_path)
    cmd = testbed.endpoints.command[0]
    assert cmd.ssh_host is not None
    assert cmd.ssh_port is not None
    return Side("real", SshNode(cmd.ssh_host, cmd.ssh_port, COMPAT_USER, settings))


@contextlib.asynccontextmanager
async def sim_side(first_job_id: int) -> AsyncIterator[Side]:
    async with SimCluster(sim_config(first_job_id)) as cluster:
        settings = SshSettings(client_keys=[cluster.client_key_path], known_hosts=cluster.known_hosts_path)
        cmd = cluster.command_nodes[0]
        side = Side("sim", SshNode(cmd.host, cmd.port, cmd.user, settings), str(cluster.home_prefix))
        try:
            yield side
        finally:
            await side.node.close()


@contextlib.asynccontextmanager
async def sides_on(real: Side) -> AsyncIterator[tuple[Side, Side]]:
    """Jobs made on ``real`` first, then on a simulator starting at the same job id; afterwards the real jobs are
    cancelled, so the session's testbed has its nodes free again for the tiers that follow."""
    await produce_jobs(real)
    try:
        async with sim_side(int(real.jobs["completed"])) as sim:
            await produce_jobs(sim)
            yield real, sim
    finally:
        await real.run(f"sudo -n -u alice scancel {' '.join(real.jobs.values())}")


@contextlib.asynccontextmanager
async def both_sides() -> AsyncIterator[tuple[Side, Side]]:
    with Testbed(TestbedSpec(compute=2, gateways=1, command=1, client=False)) as testbed:
        real = testbed_side(testbed)
        try:
            async with sides_on(real) as pair:
                yield pair
        finally:
            await real.node.close()
