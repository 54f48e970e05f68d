"""The simulated cluster driven only over SSH, as the runner drives it: submit, queue, run, cancel, account."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import asyncssh
import pytest

from simulator import SimCluster
from simulator.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SUDO = "sudo -n -u alice "


async def run(
    conn: asyncssh.SSHClientConnection, command: str, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    return await asyncio.wait_for(conn.run(command, input=stdin), timeout=20)


async def submit(conn: asyncssh.SSHClientConnection, script: str, options: str = "") -> int:
    result = await run(conn, f"{SUDO}sbatch --parsable {options}", script)
    assert result.exit_status == 0, result.stderr
    return int(str(result.stdout).strip())


async def squeue_state(conn: asyncssh.SSHClientConnection, job_id: int) -> str:
    result = await run(conn, f"squeue -h -t all -j {job_id} -o %T")
    return str(result.stdout).strip()


async def sacct(conn: asyncssh.SSHClientConnection, job_id: int, fields: str = "JobID,State,ExitCode") -> list[str]:
    result = await run(conn, f"sacct -X -n -P -j {job_id} -o {fields}")
    assert result.exit_status == 0, result.stderr
    return str(result.stdout).splitlines()


def listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((address, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


LISTENER = """#!/bin/bash
#SBATCH --job-name=viz
#SBATCH -o bwvisu-job-%j.out
echo "node $SLURMD_NODENAME list $SLURM_JOB_NODELIST nnodes $SLURM_NNODES addr $SIM_NODE_ADDR job $SLURM_JOB_ID"
sleep 1000 &
echo "child $!"
exec python3 -c "
import socket, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ['SIM_NODE_ADDR'], 5901)); s.listen()
while True: s.accept()[0].close()
"
"""


async def test_job_queues_when_full_runs_listens_cancels_and_is_accounted(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    blockers = [await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n", "-n 4") for _ in range(4)]
    job_id = await submit(sim_ssh, LISTENER)
    assert await squeue_state(sim_ssh, job_id) == "PENDING"
    reason = await run(sim_ssh, f"squeue -h -j {job_id} -o %R")
    assert str(reason.stdout).strip() == "(Resources)"

    await run(sim_ssh, f"{SUDO}scancel {blockers[0]}")
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    assert await squeue_state(sim_ssh, job_id) == "RUNNING"
    node = sim_cluster.job(job_id).nodes[0]
    address = sim_cluster.resolve(node)
    await wait_for(lambda: listening(address, 5901))
    log = sim_cluster.home_prefix / "alice" / f"bwvisu-job-{job_id}.out"
    await wait_for(lambda: "child" in log.read_text())
    first, child = log.read_text().splitlines()[:2]
    assert first == f"node {node} list {node} nnodes 1 addr {address} job {job_id}"
    child_pid = int(child.split()[1])

    result = await run(sim_ssh, f"{SUDO}scancel {job_id}")
    assert result.exit_status == 0, result.stderr
    await wait_for(lambda: not sim_cluster.job(job_id).completing and not pid_alive(child_pid))
    assert not listening(address, 5901)
    assert await sacct(sim_ssh, job_id) == [f"{job_id}|CANCELLED by 1001|0:0"]
    steps = await run(sim_ssh, f"sacct -n -P -j {job_id} -o JobID,State,ExitCode")
    assert str(steps.stdout).splitlines()[1] == f"{job_id}.batch|CANCELLED|0:15"


async def test_pending_while_scheduling_paused_then_running(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    sim_cluster.pause_scheduling()
    job_id = await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n")
    assert await squeue_state(sim_ssh, job_id) == "PENDING"
    sim_cluster.resume_scheduling()
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    assert await squeue_state(sim_ssh, job_id) == "RUNNING"


async def test_multi_node_job_gets_compressed_nodelist(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    script = "#!/bin/bash\n#SBATCH -N 3\necho $SLURM_JOB_NODELIST $SLURM_NODELIST $SLURM_NNODES $SLURM_NTASKS\n"
    job_id = await submit(sim_ssh, script, "-o out-%j.txt --ntasks-per-node 2")
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "COMPLETED")
    out = (sim_cluster.home_prefix / "alice" / f"out-{job_id}.txt").read_text()
    assert out == "sim-c[001-003] sim-c[001-003] 3 6\n"
    assert await sacct(sim_ssh, job_id, "NodeList,NNodes,AllocCPUS,State") == ["sim-c[001-003]|3|6|COMPLETED"]


async def test_nodelist_places_the_job_and_no_requeue_is_shown(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    job_id = await submit(sim_ssh, "#!/bin/bash\nexec sleep 30\n", "--nodelist=sim-c003 --no-requeue")
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    assert sim_cluster.job(job_id).nodes == ["sim-c003"]
    shown = (await run(sim_ssh, f"scontrol show job {job_id}")).stdout
    assert "   ReqNodeList=sim-c003 ExcNodeList=(null)\n" in str(shown)
    assert "   Requeue=0 Restarts=0 " in str(shown)
    await run(sim_ssh, f"{SUDO}scancel {job_id}")


async def test_time_limit_ends_job_with_timeout(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job_id = await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n", "-t 0:1")  # rounds up to 1 minute = 0.5 s here
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "TIMEOUT" and not sim_cluster.job(job_id).completing)
    assert await sacct(sim_ssh, job_id, "State,Timelimit,Reason") == ["TIMEOUT|00:01:00|None"]
    # as slurmctld shows it: its time-limit check ends the job past its limit, for reason TimeLimit, and keeps
    # the SIGTERM that ended the script (the differential tier's TIMEOUT job)
    assert str((await run(sim_ssh, f"squeue -h -t all -j {job_id} -o %T|%r|%R|%L")).stdout) == (
        "TIMEOUT|TimeLimit|(TimeLimit)|INVALID\n"
    )
    shown = str((await run(sim_ssh, f"scontrol show job {job_id}")).stdout)
    assert "   JobState=TIMEOUT Reason=TimeLimit Dependency=(null)\n" in shown
    assert " ExitCode=0:15\n" in shown


async def test_squeue_json_dumps_every_job_whatever_else_is_asked(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    first = await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n")
    held = await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n", "--hold")
    result = await run(sim_ssh, f"squeue --json -j {first} -t bogus-is-checked-first")
    assert result.exit_status == 1
    assert str(result.stderr).startswith("squeue: error: Invalid job state specified: bogus-is-checked-first\n")
    result = await run(sim_ssh, f"squeue --json -h -j {first} -O NoSuchField")
    assert (result.exit_status, result.stderr) == (0, "")
    dump = json.loads(str(result.stdout))
    assert dump["meta"]["Slurm"]["release"] == "22.05.8"
    assert [(j["job_id"], j["job_state"], j["state_reason"]) for j in dump["jobs"]] == [
        (first, "RUNNING", "None"), (held, "PENDING", "JobHeldUser"),
    ]  # fmt: skip
    result = await run(sim_ssh, "squeue --json=v0.0.38")
    assert (result.exit_status, result.stdout) == (1, "")
    assert (
        result.stderr
        == "squeue: option '--json' doesn't allow an argument\nTry \"squeue --help\" for more information\n"
    )
    await run(sim_ssh, f"{SUDO}scancel {first} {held}")


async def test_exit_code_decides_completed_or_failed(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    ok = await submit(sim_ssh, "#!/bin/bash\ntrue\n")
    bad = await submit(sim_ssh, "#!/bin/bash\nexit 3\n")
    await wait_for(lambda: all(sim_cluster.job(j).state.value in ("COMPLETED", "FAILED") for j in (ok, bad)))
    await wait_for(lambda: not any(sim_cluster.job(j).completing for j in (ok, bad)))
    assert await sacct(sim_ssh, ok) == [f"{ok}|COMPLETED|0:0"]
    assert await sacct(sim_ssh, bad) == [f"{bad}|FAILED|3:0"]


async def test_chdir_comment_name_and_environment(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    work = sim_cluster.home_prefix / "alice" / "work"
    work.mkdir()
    script = "#!/bin/bash\npwd\necho $SLURM_JOB_NAME $SLURM_SUBMIT_DIR $USER $SLURM_CPUS_ON_NODE\n"
    job_id = await submit(sim_ssh, script, f"-D {work} -J myjob --comment 'runner job 1' -o log.txt")
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "COMPLETED")
    assert (work / "log.txt").read_text() == f"{work}\nmyjob {work} alice 1\n"
    result = await run(sim_ssh, f"squeue -h -t all -j {job_id} -o '%j|%k|%u|%Z'")
    assert str(result.stdout) == f"myjob|runner job 1|alice|{work}\n"
    shown = await run(sim_ssh, f"scontrol show job {job_id}")
    assert "   Comment=runner job 1 " in str(shown.stdout).splitlines()


async def test_sbatch_errors_use_slurm_texts(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    bad_partition = await run(sim_ssh, f"{SUDO}sbatch -p nope", "#!/bin/bash\ntrue\n")
    assert bad_partition.exit_status == 1
    assert str(bad_partition.stderr).endswith(
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    no_shebang = await run(sim_ssh, f"{SUDO}sbatch", "echo hi\n")
    assert str(no_shebang.stderr).startswith("sbatch: error: This does not look like a batch script.")
    too_wide = await run(sim_ssh, f"{SUDO}sbatch -c 64", "#!/bin/bash\ntrue\n")
    assert "Requested node configuration is not available" in str(too_wide.stderr)
    bad_time = await run(sim_ssh, f"{SUDO}sbatch -t soon", "#!/bin/bash\ntrue\n")
    assert bad_time.stderr == "sbatch: error: Invalid --time specification\n"
    assert sim_cluster.scheduler.jobs == {}


async def test_jobs_slurm_would_never_start_stay_pending(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    too_many = await submit(sim_ssh, "#!/bin/bash\ntrue\n", "-N 50")
    held = await submit(sim_ssh, "#!/bin/bash\ntrue\n", "-H")
    normal = await submit(sim_ssh, "#!/bin/bash\nsleep 100\n")
    await wait_for(lambda: sim_cluster.job(normal).state.value == "RUNNING")
    result = await run(sim_ssh, "squeue -h -t PD -o %i|%T|%r")
    assert str(result.stdout).splitlines() == [f"{too_many}|PENDING|PartitionConfig", f"{held}|PENDING|JobHeldUser"]


async def test_unknown_job_ids(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    cancel = await run(sim_ssh, f"{SUDO}scancel 999")
    assert (cancel.exit_status, cancel.stderr) == (0, "")  # Slurm 22.05: silent unless --verbose
    verbose = await run(sim_ssh, f"{SUDO}scancel --verbose 999")
    assert (verbose.exit_status, verbose.stderr) == (
        0,
        "scancel: Terminating job 999\nscancel: error: Kill job error on job id 999: Invalid job id specified\n",
    )
    queue = await run(sim_ssh, "squeue -j 999")
    assert (queue.exit_status, queue.stderr) == (1, "slurm_load_jobs error: Invalid job id specified\n")
    show = await run(sim_ssh, "scontrol show job 999")
    assert show.exit_status == 1
    account = await run(sim_ssh, "sacct -n -X -j 999")
    assert (account.exit_status, account.stdout) == (0, "")


async def test_behaviour_job_listens_after_delay_without_a_process(
    sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection
) -> None:
    job_id = await submit(sim_ssh, "#!/bin/bash\n#SIM-BEHAVIOUR listen port=5999 after=0.2\n")
    await wait_for(lambda: sim_cluster.job(job_id).state.value == "RUNNING")
    assert job_id not in sim_cluster.executor.running_processes
    address = sim_cluster.resolve(sim_cluster.job(job_id).nodes[0])
    await wait_for(lambda: listening(address, 5999))
    await run(sim_ssh, f"{SUDO}scancel {job_id}")
    await wait_for(lambda: not listening(address, 5999))
    assert await sacct(sim_ssh, job_id) == [f"{job_id}|CANCELLED by 1001|0:0"]


async def test_default_squeue_and_header(sim_cluster: SimCluster, sim_ssh: asyncssh.SSHClientConnection) -> None:
    job_id = await submit(sim_ssh, "#!/bin/bash\nsleep 1000\n", "-J demo")
    result = await run(sim_ssh, "squeue")
    lines = str(result.stdout).splitlines()
    assert lines[0] == "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    assert lines[1].split() == [str(job_id), "sim", "demo", "alice", "R", lines[1].split()[5], "1", "sim-c001"]
    by_user = await run(sim_ssh, "squeue -h -u bob")
    assert by_user.stdout == ""


def test_homes_and_key_permissions(sim_cluster: SimCluster) -> None:
    assert (sim_cluster.home_prefix / "alice").is_dir()
    assert Path(sim_cluster.client_key_path).stat().st_mode & 0o777 == 0o600
