"""Each fault knob of the simulated cluster, observed over SSH the way the runner would observe it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncssh
import pytest

from simulator import SimCluster
from simulator.faults import CommandFault
from simulator.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = "#!/bin/bash\nsleep 1000\n"


async def run(
    conn: asyncssh.SSHClientConnection, command: str, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    return await asyncio.wait_for(conn.run(command, input=stdin), timeout=20)


async def assert_dropped(conn: asyncssh.SSHClientConnection, command: str, stdin: str) -> None:
    """The command gets no answer (no exit status) and the connection is gone."""
    try:
        result = await run(conn, command, stdin)
    except (asyncssh.Error, OSError):
        pass
    else:
        assert (result.exit_status, result.stdout) == (None, "")
    with pytest.raises((asyncssh.Error, OSError)):
        await run(conn, "id")


async def test_command_node_down_refuses_connections_until_up(sim_command_node_down: SimCluster) -> None:
    cluster = sim_command_node_down
    first, second = cluster.command_nodes
    with pytest.raises(ConnectionRefusedError):
        await cluster.connect(first.node)
    async with await cluster.connect(second.node) as conn:
        assert (await run(conn, "squeue -h")).exit_status == 0
    await cluster.node_up(first.node)
    async with await cluster.connect(first.node) as conn:
        assert (await run(conn, "squeue -h")).exit_status == 0


async def test_node_down_cuts_open_connections(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    await sim_cluster.node_down(sim_cluster.command_nodes[0].node)
    with pytest.raises((asyncssh.Error, OSError)):
        await run(sim_ssh, "squeue")


async def test_slow_command(sim_slow_squeue: float, sim_ssh: asyncssh.SSHClientConnection) -> None:
    started = time.monotonic()
    assert (await run(sim_ssh, "squeue -h")).exit_status == 0
    assert time.monotonic() - started >= sim_slow_squeue
    started = time.monotonic()
    await run(sim_ssh, "id")
    assert time.monotonic() - started < sim_slow_squeue


async def test_sbatch_fails_with_slurm_text(
    sim_failing_sbatch: CommandFault, sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    failed = await run(sim_ssh, "sudo -n -u alice sbatch --parsable", SCRIPT)
    assert failed.exit_status == 1
    assert failed.stderr == "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"
    assert sim_cluster.scheduler.jobs == {}
    ok = await run(sim_ssh, "sudo -n -u alice sbatch --parsable", SCRIPT)
    assert (ok.exit_status, ok.stdout) == (0, "1\n")


async def test_sbatch_fails_at_the_nth_call(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    sim_cluster.faults.fail_command("sbatch", at_call=3, stderr="sbatch: error: custom\n")
    statuses = [(await run(sim_ssh, "sudo -n -u alice sbatch", SCRIPT)).exit_status for _ in range(4)]
    assert statuses == [0, 0, 1, 0]


async def test_dropped_connection_before_submission(
    sim_dropping_sbatch: CommandFault, sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    await assert_dropped(sim_ssh, "sudo -n -u alice sbatch --parsable", SCRIPT)
    assert sim_cluster.scheduler.jobs == {}
    record = sim_cluster.command_log.named("sbatch")[0]
    assert (record.stdin_size, record.exit_status) == (len(SCRIPT), None)


async def test_dropped_connection_after_submission(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    sim_cluster.faults.drop_connection("sbatch", execute=True)
    await assert_dropped(sim_ssh, "sudo -n -u alice sbatch --parsable", SCRIPT)
    assert list(sim_cluster.scheduler.jobs) == [1]  # submitted, but the answer was lost


async def test_controller_down_fails_every_slurm_client(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    job = await run(sim_ssh, "sudo -n -u alice sbatch --parsable", SCRIPT)
    job_id = int(str(job.stdout))
    sim_cluster.controller_up = False
    queue = await run(sim_ssh, "squeue -h")
    assert (queue.exit_status, queue.stderr) == (
        1,
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n",
    )
    submit = await run(sim_ssh, "sudo -n -u alice sbatch", SCRIPT)
    assert (submit.exit_status, submit.stderr) == (
        1,
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n",
    )
    cancel = await run(sim_ssh, f"sudo -n -u alice scancel {job_id}")
    assert (cancel.exit_status, cancel.stderr) == (
        8,  # real scancel exits with SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR (1800) modulo 256
        f"scancel: error: Kill job error on job id {job_id}: Unable to contact slurm controller (connect failure)\n",
    )
    account = await run(sim_ssh, f"sacct -j {job_id}")
    assert account.exit_status == 1
    assert str(account.stderr).endswith("sacct: error: Problem talking to the database: Connection refused\n")
    ping = await run(sim_ssh, "scontrol ping")
    assert (ping.exit_status, ping.stdout) == (1, "Slurmctld(primary) at sim-ctl is DOWN\n")
    sim_cluster.controller_up = True
    assert (await run(sim_ssh, "squeue -h -o %i")).stdout == f"{job_id}\n"


async def test_controller_down_fixture(sim_controller_down: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    assert (await run(sim_ssh, "squeue")).exit_status == 1


async def test_node_failure_ends_its_jobs_node_fail(
    sim_node_failure: Callable[[str], None], sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    result = await run(sim_ssh, "sudo -n -u alice sbatch --parsable -N 2", SCRIPT)
    job_id = int(str(result.stdout))
    await wait_for(lambda: job_id in sim_cluster.executor.running_processes)
    pid = sim_cluster.executor.running_processes[job_id]
    sim_node_failure("sim-c002")
    await wait_for(lambda: job_id not in sim_cluster.executor.running_processes)
    await wait_for(lambda: not sim_cluster.job(job_id).completing)
    account = await run(sim_ssh, f"sacct -X -n -P -j {job_id} -o State,NodeList")
    assert account.stdout == "NODE_FAIL|sim-c[001-002]\n"
    assert pid not in sim_cluster.executor.running_processes.values()
    # The failed node takes no new work; the other three still do.
    nxt = int(str((await run(sim_ssh, "sudo -n -u alice sbatch --parsable -N 3", SCRIPT)).stdout))
    await wait_for(lambda: sim_cluster.job(nxt).state.value == "RUNNING")
    assert "sim-c002" not in sim_cluster.job(nxt).nodes
