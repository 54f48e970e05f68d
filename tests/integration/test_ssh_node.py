"""The runner's SSH transport against the simulator's real SSH servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.config import SshSettings
from runner.errors import NodeUnreachable
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


@pytest.mark.parametrize(
    "user_config",
    [
        "Host *\n    UserKnownHostsFile none\n    StrictHostKeyChecking no\n",
        "Host *\n    UserKnownHostsFile /dev/null\n    GlobalKnownHostsFile /dev/null\n",
    ],
)
async def test_host_keys_are_checked_whatever_the_users_ssh_config_says(
    sim_cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_config: str
) -> None:
    # the runner's account has a ~/.ssh/config that turns host key checking off, and knows no host key
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(user_config)
    monkeypatch.setenv("HOME", str(tmp_path))
    endpoint = sim_cluster.command_nodes[0]
    unchecked = SshNode(
        endpoint.host, endpoint.port, endpoint.user, SshSettings(client_keys=[sim_cluster.client_key_path])
    )
    try:
        with pytest.raises(NodeUnreachable, match="cannot connect"):
            await unchecked.run(["id", "-un"])
    finally:
        await unchecked.close()
    checked = SshNode(
        endpoint.host,
        endpoint.port,
        endpoint.user,
        SshSettings(client_keys=[sim_cluster.client_key_path], known_hosts=sim_cluster.known_hosts_path),
    )
    try:
        assert (await checked.run(["id", "-un"])).ok  # the configured known_hosts still works
    finally:
        await checked.close()
