"""The simulated nodes' SSH side: keys, sudo, users, session limit, command log, gateway wiring."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from simulator import SimCluster
from simulator.__main__ import describe
from simulator.__main__ import run as run_cli
from simulator.config import ClusterConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def run(
    conn: asyncssh.SSHClientConnection, command: str, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    return await asyncio.wait_for(conn.run(command, input=stdin), timeout=20)


async def test_sudo_wrapping_runs_as_the_user(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    result = await run(sim_ssh, "sudo -n -u bob id")
    assert result.stdout == "uid=1002(bob) gid=1002(bob) groups=1002(bob)\n"
    plain = await run(sim_ssh, "id -u")
    assert plain.stdout == "990\n"
    unknown = await run(sim_ssh, "sudo -n -u mallory sbatch")
    assert unknown.exit_status == 1
    assert unknown.stderr == "sudo: unknown user mallory\nsudo: error initializing audit plugin sudoers_audit\n"
    assert sim_cluster.command_log.named("sbatch") == []


async def test_cluster_user_may_log_in_but_not_sudo(sim_cluster: SimCluster) -> None:
    async with await sim_cluster.connect(sim_cluster.command_nodes[0].node, user="alice") as conn:
        assert (await run(conn, "id -un")).stdout == "alice\n"
        denied = await run(conn, "sudo -n -u bob id")
        assert (denied.exit_status, denied.stderr) == (1, "sudo: a password is required\n")


async def test_user_lookup(sim_ssh: asyncssh.SSHClientConnection, sim_cluster: SimCluster) -> None:
    found = await run(sim_ssh, "getent passwd alice")
    assert found.stdout == f"alice:x:1001:1001::{sim_cluster.home_prefix}/alice:/bin/bash\n"
    missing = await run(sim_ssh, "getent passwd mallory")
    assert (missing.exit_status, missing.stdout) == (2, "")
    no_id = await run(sim_ssh, "id mallory")
    assert (no_id.exit_status, no_id.stderr) == (1, "id: 'mallory': no such user\n")


async def test_system_accounts_are_there_as_on_debian(
    sim_ssh: asyncssh.SSHClientConnection, sim_cluster: SimCluster
) -> None:
    # the runner's refusal tests attack with these, so the simulated cluster must have them
    found = await run(sim_ssh, "getent passwd root daemon nobody")
    assert found.stdout == (
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    assert not (sim_cluster.home_prefix / "daemon").exists()


async def test_unknown_command_and_command_log(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    result = await run(sim_ssh, "rm -rf '/; echo'")
    assert (result.exit_status, result.stderr) == (127, "bash: rm: command not found\n")
    await run(sim_ssh, "sudo -n -u alice sbatch --parsable", "#!/bin/bash\ntrue\n")
    record = sim_cluster.command_log.named("sbatch")[0]
    assert record.argv == ("sbatch", "--parsable")
    assert (record.user, record.login_user, record.stdin_size, record.exit_status) == (
        "alice",
        "bwvisu",
        len("#!/bin/bash\ntrue\n"),
        0,
    )
    assert record.node == sim_cluster.command_nodes[0].node
    assert sim_cluster.command_log.named("rm")[0].argv == ("rm", "-rf", "/; echo")


async def test_shell_syntax_is_never_interpreted(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    result = await run(sim_ssh, "squeue -h; sbatch")
    assert result.exit_status == 1  # squeue rejects the argument "-h;"; nothing else ran
    assert sim_cluster.command_log.named("sbatch") == []


async def test_wrong_key_and_unknown_user_are_refused(sim_cluster: SimCluster) -> None:
    endpoint = sim_cluster.command_nodes[0]
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            endpoint.host, endpoint.port, username=endpoint.user, client_keys=[other],
            known_hosts=str(sim_cluster.known_hosts_path), agent_path=None, config=None,
        )  # fmt: skip
    with pytest.raises(asyncssh.PermissionDenied):
        await sim_cluster.connect(endpoint.node, user="mallory")


async def test_each_node_has_its_own_pinned_host_key(sim_cluster: SimCluster) -> None:
    first, second = sim_cluster.command_nodes
    lines = sim_cluster.known_hosts_path.read_text().splitlines()
    first_key = next(line for line in lines if f"[{first.host}]" in line).split(" ", 1)[1]
    forged = [line for line in lines if f"[{second.host}]" not in line]
    forged.append(f"[{second.host}]:{second.port} {first_key}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(
            second.host, second.port, username=second.user, client_keys=[str(sim_cluster.client_key_path)],
            known_hosts=asyncssh.import_known_hosts("\n".join(forged) + "\n"), agent_path=None, config=None,
        )  # fmt: skip


async def test_eleventh_concurrent_session_is_refused(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    # sbatch without a script file waits for stdin, so each channel stays open until we close it.
    processes = [await sim_ssh.create_process("sudo -n -u alice sbatch") for _ in range(10)]
    try:
        with pytest.raises(asyncssh.ChannelOpenError) as refused:
            await sim_ssh.create_process("squeue")
        assert refused.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
        assert refused.value.reason == "open failed"
        processes[0].stdin.write("#!/bin/bash\ntrue\n")
        processes[0].stdin.write_eof()
        await asyncio.wait_for(processes[0].wait(), timeout=10)
        assert (await run(sim_ssh, "squeue -h -o %i")).exit_status == 0
    finally:
        for process in processes:
            process.close()


async def test_gateway_nodes_answer_iptables_and_every_node_nc(sim_cluster: SimCluster) -> None:
    gateway = sim_cluster.gateway_nodes[0]
    assert sim_cluster.gateway_service(gateway.node).listen_addresses == [gateway.external_ip, gateway.internal_ip]
    async with await sim_cluster.connect(gateway.node) as conn:
        listing = await run(conn, "sudo -n iptables -t nat -S")
        assert listing.exit_status == 0, listing.stderr
        assert sim_cluster.command_log.named("iptables")[0].user == "root"
        sbatch = await run(conn, "sbatch")
        assert sbatch.exit_status == 127
    async with await sim_cluster.connect(sim_cluster.command_nodes[0].node) as conn:
        probe = await run(conn, f"nc -z {gateway.internal_ip} {gateway.port}")
        assert probe.exit_status == 0, probe.stderr
        assert (await run(conn, "iptables -S")).exit_status == 127


async def test_runner_config_fragment(sim_cluster: SimCluster) -> None:
    config = sim_cluster.runner_config()
    assert config["bwvisu-home-prefix"] == str(sim_cluster.home_prefix)
    assert config["command-nodes"][0] == {
        "ip": sim_cluster.command_nodes[0].host, "user": "bwvisu", "port": sim_cluster.command_nodes[0].port,
    }  # fmt: skip
    gateway = sim_cluster.gateway_nodes[1]
    assert config["gateway-nodes"][1] == {
        "internal-ip": gateway.internal_ip, "external-ip": gateway.external_ip, "user": "bwvisu", "port": gateway.port,
    }  # fmt: skip
    assert len({n.address for n in sim_cluster.compute_nodes}) == 4
    assert sim_cluster.hosts_file.read_text().count("\n") == 8


async def test_cli_prints_endpoints_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_cli(ClusterConfig.build(command=1, compute=1, gateways=1), stop))
    for _ in range(500):
        if "runner config fragment" in capsys.readouterr().out or task.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    async with SimCluster(ClusterConfig.build(command=1, compute=1, gateways=0)) as cluster:
        text = describe(cluster)
    assert "command sim-login1: ssh -p" in text
    assert "client key:" in text
