"""The runner's SSH transport against the simulator's real SSH servers."""

from __future__ import annotations

import asyncio

import pytest

from runner.config import SshSettings
from runner.ssh import SshNode
from simulator import SimCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def node(cluster: SimCluster) -> SshNode:
    endpoint = cluster.command_nodes[0]
    settings = SshSettings(client_keys=[cluster.client_key_path], known_hosts=cluster.known_hosts_path)
    return SshNode(endpoint.host, endpoint.port, endpoint.user, settings)


async def test_a_command_that_exits_before_reading_stdin_still_answers(sim_cluster: SimCluster) -> None:
    ssh = node(sim_cluster)
    try:
        script = "#!/bin/bash\n" + "# padding\n" * 20_000
        out = await ssh.run(["sudo", "-n", "-u", "nosuchuser", "sbatch", "--parsable"], stdin=script)
        assert out.exit_status == 1
        assert "sudo" in out.stderr
        again = await ssh.run(["id", "-un"])  # the connection was kept
        assert again.ok
        assert ssh.connects == 1
    finally:
        await ssh.close()


async def test_commands_share_one_connection(sim_cluster: SimCluster) -> None:
    ssh = node(sim_cluster)
    try:
        for _ in range(5):
            assert (await ssh.run(["id", "-un"])).stdout.strip() == sim_cluster.command_nodes[0].user
        assert ssh.connects == 1
    finally:
        await ssh.close()


async def test_a_burst_beyond_the_servers_session_limit_waits_instead_of_failing(sim_cluster: SimCluster) -> None:
    endpoint = sim_cluster.command_nodes[0]
    # more channels at once than the simulated sshd's MaxSessions (10): some opens are refused and retried
    settings = SshSettings(
        client_keys=[sim_cluster.client_key_path], known_hosts=sim_cluster.known_hosts_path, max_sessions=16
    )
    ssh = SshNode(endpoint.host, endpoint.port, endpoint.user, settings)
    sim_cluster.faults.slow_command("id", 0.05)  # keep channels open long enough to overlap
    try:
        outs = await asyncio.gather(*(ssh.run(["id", "-un"]) for _ in range(40)))
        assert all(out.ok for out in outs)
        assert ssh.connects == 1
    finally:
        await ssh.close()
