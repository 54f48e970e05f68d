"""The simulator answers the captured commands of tests/fixtures/slurm/manifest.json as real Slurm 22.05 did.

Each case runs the manifest's exact command line (job ids mapped to this cluster's jobs) over SSH and compares
stdout, stderr and the exit status with the capture. These pin the differences the contract suite found.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import asyncssh
import pytest

from simulator import SimCluster
from simulator.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
SLEEP = "#!/bin/bash\nsleep 1000\n"


def captured(name: str) -> tuple[int, str, str]:
    err = FIXTURES / f"{name}.stderr.txt"
    return (
        MANIFEST["commands"][name]["exit_status"],
        (FIXTURES / f"{name}.txt").read_text(),
        err.read_text() if err.exists() else "",
    )


async def replay(
    conn: asyncssh.SSHClientConnection, name: str, ids: dict[str, int] | None = None
) -> tuple[int, str, str]:
    """Run capture ``name``'s command, its job ids replaced by ``ids``; the answer with ids mapped back."""
    entry = MANIFEST["commands"][name]
    command = entry["command"]
    for real, ours in (ids or {}).items():
        command = re.sub(rf"\b{real}\b", str(ours), command)
    result = await asyncio.wait_for(conn.run(command, input=entry.get("stdin")), timeout=20)
    out, err = str(result.stdout), str(result.stderr)
    for real, ours in (ids or {}).items():
        out, err = (re.sub(rf"\b{ours}\b", real, text) for text in (out, err))
    assert result.exit_status is not None
    return result.exit_status, out, err


@pytest.mark.parametrize(
    "name", ["scancel_unknown", "scancel_unknown_verbose", "sbatch_invalid_time", "sbatch_invalid_partition"]
)
async def test_commands_without_jobs(sim_ssh: asyncssh.SSHClientConnection, name: str) -> None:
    assert await replay(sim_ssh, name) == captured(name)


async def submit(conn: asyncssh.SSHClientConnection, user: str = "alice") -> int:
    result = await conn.run(f"sudo -n -u {user} sbatch --parsable", input=SLEEP)
    return int(str(result.stdout))


async def test_scancel_of_another_users_job(sim_ssh: asyncssh.SSHClientConnection) -> None:
    job = await submit(sim_ssh)
    assert await replay(sim_ssh, "scancel_other_users_job", {"2": job}) == captured("scancel_other_users_job")


async def test_scancel_of_a_running_job(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job, other = await submit(sim_ssh), await submit(sim_ssh)
    await wait_for(lambda: {sim_cluster.job(j).state.value for j in (job, other)} == {"RUNNING"})
    assert await replay(sim_ssh, "scancel", {"1": job}) == captured("scancel")
    verbose = await sim_ssh.run(f"sudo -n -u alice scancel -v {other}")
    assert (verbose.exit_status, verbose.stderr) == (0, f"scancel: Terminating job {other}\n")


async def test_scancel_of_an_ended_job_is_silent_unless_verbose(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    result = await sim_ssh.run("sudo -n -u alice sbatch --parsable", input="#!/bin/bash\ntrue\n")
    job = int(str(result.stdout))
    await wait_for(lambda: sim_cluster.job(job).state.value == "COMPLETED")
    quiet = await sim_ssh.run(f"sudo -n -u alice scancel {job}")
    assert (quiet.exit_status, quiet.stderr) == (0, "")
    verbose = await sim_ssh.run(f"sudo -n -u alice scancel --verbose {job}")
    assert (verbose.exit_status, verbose.stderr) == (
        0,
        f"scancel: Terminating job {job}\n"
        f"scancel: error: Kill job error on job id {job}: Job/step already completing or completed\n",
    )


async def test_scancel_with_the_controller_down(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job = await submit(sim_ssh)
    sim_cluster.controller_up = False
    assert await replay(sim_ssh, "scancel_controller_down", {"3": job}) == captured("scancel_controller_down")
    verbose = await sim_ssh.run(f"sudo -n -u alice scancel --verbose {job}")
    assert verbose.exit_status == 8
    assert str(verbose.stderr).startswith(f"scancel: Terminating job {job}\n")
