"""The simulator's output against captures from a real Slurm 22.05 cluster (tests/fixtures/slurm/).

Values differ (node names, times, uids); layouts, key order and error texts must not.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncssh
import pytest

from simulator import SimCluster
from simulator.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slurm"
SUDO = "sudo -n -u alice "
SLEEP = "#!/bin/bash\nsleep 1000\n"


def fixture(name: str) -> str:
    """A capture from the real cluster; a missing one fails (regenerate: python -m containers.capture_fixtures)."""
    path = FIXTURES / name
    assert path.is_file(), f"capture {name} is missing from {FIXTURES.name}/ (see its README.md)"
    return path.read_text()


async def run(
    conn: asyncssh.SSHClientConnection, command: str, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    return await asyncio.wait_for(conn.run(command, input=stdin), timeout=20)


def keys(text: str) -> list[str]:
    """The ``Key=`` names of scontrol output, in order."""
    return re.findall(r"(?:^|\s)([A-Za-z/:_]+)=", text)


async def test_sbatch_error_texts_match(sim_ssh: asyncssh.SSHClientConnection) -> None:
    partition = await run(sim_ssh, f"{SUDO}sbatch -p nosuch", "#!/bin/bash\ntrue\n")
    assert partition.stderr == fixture("sbatch_invalid_partition.stderr.txt")
    time_spec = await run(sim_ssh, f"{SUDO}sbatch -t soon", "#!/bin/bash\ntrue\n")
    assert time_spec.stderr == fixture("sbatch_invalid_time.stderr.txt")
    shebang = await run(sim_ssh, f"{SUDO}sbatch", "echo hi\n")
    assert shebang.stderr == fixture("sbatch_no_shebang.stderr.txt")
    plain = await run(sim_ssh, f"{SUDO}sbatch", SLEEP)
    assert re.sub(r"\d+", "N", str(plain.stdout)) == re.sub(r"\d+", "N", fixture("sbatch_plain.txt"))


async def test_sudo_and_unknown_id_texts_match(sim_ssh: asyncssh.SSHClientConnection) -> None:
    sudo = await run(sim_ssh, "sudo -n -u nosuchuser squeue")
    assert sudo.stderr == fixture("sudo_unknown_user.stderr.txt")
    queue = await run(sim_ssh, "squeue -j 4242")
    assert (queue.stdout, queue.stderr) == (fixture("squeue_j_unknown.txt"), fixture("squeue_j_unknown.stderr.txt"))
    show = await run(sim_ssh, "scontrol show job 4242")
    assert show.stderr == fixture("scontrol_show_job_unknown.stderr.txt")


async def test_scancel_of_another_users_job_matches(sim_ssh: asyncssh.SSHClientConnection) -> None:
    expected = fixture("scancel_other_users_job.stderr.txt")
    job_id = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable", SLEEP)).stdout))
    denied = await run(sim_ssh, f"sudo -n -u bob scancel {job_id}")
    assert denied.stderr == re.sub(r"job id \d+", f"job id {job_id}", expected)


async def test_squeue_layouts_match(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job_id = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable -J bwvisu-xpra -t 10", SLEEP)).stdout))
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    default = await run(sim_ssh, "squeue")
    assert str(default.stdout).splitlines()[0] == fixture("squeue_default.txt").splitlines()[0]
    fields = "JobID,State,NodeList,UserName,Name,TimeUsed,TimeLimit,NumNodes,Reason"
    wide = await run(sim_ssh, f"squeue -O {fields}")
    header, line = str(wide.stdout).splitlines()
    real_header, *real_lines = fixture("squeue_O.txt").splitlines()
    assert header == real_header
    real_running = next(r for r in real_lines if "RUNNING" in r)
    assert [len(c) for c in re.findall(r".{20}", line)] == [len(c) for c in re.findall(r".{20}", real_running)]
    assert line.split()[1::7] == real_running.split()[1::7]  # state and reason ("None")
    assert line.split()[6] == real_running.split()[6] == "10:00"


async def test_scontrol_show_job_key_order_matches(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    script = "#!/bin/bash\n#SBATCH --comment=bwvisu-runner\nsleep 1000\n"
    job_id = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable --ntasks-per-node 1 -t 10", script)).stdout))
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    shown = str((await run(sim_ssh, f"scontrol show job {job_id}")).stdout)
    real = fixture("scontrol_show_job_running.txt")
    assert keys(shown) == keys(real)
    assert [len(line) - len(line.lstrip()) for line in shown.splitlines()] == [
        len(line) - len(line.lstrip()) for line in real.splitlines()
    ]
    assert shown.endswith("   Power=\n   \n\n")
    assert real.endswith("   Power=\n   \n\n")
    oneline = str((await run(sim_ssh, f"scontrol -o show job {job_id}")).stdout)
    real_oneline = fixture("scontrol_show_job_oneliner.txt")
    assert keys(oneline) == keys(real_oneline)
    assert oneline.endswith("Power= \n")
    assert "Comment=bwvisu-runner  StdErr=" in oneline


async def test_scontrol_pending_job_matches(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job_id = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable -H", SLEEP)).stdout))
    shown = str((await run(sim_ssh, f"scontrol show job {job_id}")).stdout)
    real = fixture("scontrol_show_job_pending.txt")
    assert keys(shown) == keys(real)
    for line in ("   JobState=PENDING Reason=JobHeldUser Dependency=(null)", "   NodeList=", "   AccrueTime=Unknown"):
        assert line in shown.splitlines()
        assert line in real.splitlines()


async def test_sacct_running_and_pending_match(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    running = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable", SLEEP)).stdout))
    held = int(str((await run(sim_ssh, f"{SUDO}sbatch --parsable -H", SLEEP)).stdout))
    await wait_for(lambda: sim_cluster.job(running).state.value == "RUNNING")
    fields = "JobID,JobName,User,State,ExitCode,Start,End,Elapsed,NodeList,Reason"
    out = str((await run(sim_ssh, f"sacct -X -n -P -j {running},{held} -o {fields}")).stdout).splitlines()
    real = fixture("sacct_running_pending.txt").splitlines()
    assert [line.split("|")[3:5] + line.split("|")[6:7] for line in out] == [
        line.split("|")[3:5] + line.split("|")[6:7] for line in real
    ]
    assert out[1].split("|")[5:] == real[1].split("|")[5:]
