"""The Slurm command line as the runner uses it, asserted identically on the simulator and on real Slurm 22.05.

Every call is built by :mod:`runner.slurm.cli` and every answer read by its parsers, so a pass here means the
runner's own path works on both clusters; texts and exit statuses the runner branches on are pinned exactly.
"""

from __future__ import annotations

import re

import pytest

from runner.slurm import cli as slurm
from runner.slurm import hostlist
from tests.contract.backends import Backend
from tests.contract.support import sacct, scancel, squeue, submit, wait_accounted, wait_state

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]

SLEEP = "#!/bin/bash\nsleep 300\n"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
UNKNOWN_ID = "999999"


async def test_sbatch_parsable_on_stdin_returns_a_job_id(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, "--hold")
    try:
        assert job_id.isdigit()
    finally:
        await scancel(backend, job_id)


async def test_squeue_shows_pending_and_running_jobs_in_the_runners_format(backend: Backend) -> None:
    held = await submit(backend, SLEEP, "--hold", tag="held")
    running = await submit(backend, backend.listener_script(47010), "--time=10", tag="running")
    try:
        await wait_state(backend, running, {"RUNNING"})
        rows = await squeue(backend, [held, running])  # one call for both, as the watcher polls
        assert set(rows) == {held, running}
        pending = rows[held]
        assert pending["slurm-state"] == "PENDING"
        assert pending["reason"] == "JobHeldUser"
        assert pending["node-list"] == ""
        assert pending["start-time"] == "N/A"
        assert pending["time-limit"] == "UNLIMITED"
        assert pending["job-name"] == slurm.job_name("held")
        assert slurm.bwvisu_state(pending["slurm-state"]).value == "submitted"
        row = rows[running]
        assert row["reason"] == "None"
        assert row["node-list"] in backend.compute_hosts
        assert row["nodes"] == "1"
        assert row["time-limit"] == "10:00"
        assert row["user"] == backend.user
        assert row["partition"] == backend.partition
        assert row["job-name"] == slurm.job_name("running")
        assert TIMESTAMP.fullmatch(row["submit-time"])
        assert TIMESTAMP.fullmatch(row["start-time"])
        assert slurm.bwvisu_state(row["slurm-state"]).value == "running"
    finally:
        await scancel(backend, held)
        await scancel(backend, running)


async def test_scancel_verbose_of_a_running_job_then_cancelled_in_squeue_and_sacct(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, tag="cancelled")
    await wait_state(backend, job_id, {"RUNNING"})
    out = await scancel(backend, job_id)
    assert (out.exit_status, out.stdout, out.stderr) == (0, "", f"scancel: Terminating job {job_id}\n")
    assert not slurm.scancel_unknown_job(out.stderr)
    await wait_state(backend, job_id, {"CANCELLED"})  # -t all keeps ended jobs for MinJobAge
    row = await wait_accounted(backend, job_id, {"CANCELLED"}, slurm.job_name("cancelled"))
    assert re.fullmatch(r"CANCELLED by \d+", row["end-reason"])
    assert row["exit-code"] == "0:0"
    assert TIMESTAMP.fullmatch(row["end-time"])


async def test_scancel_of_an_unknown_job(backend: Backend) -> None:
    verbose = await scancel(backend, UNKNOWN_ID)
    assert verbose.exit_status == 0
    assert verbose.stdout == ""
    assert verbose.stderr == (
        f"scancel: Terminating job {UNKNOWN_ID}\n"
        f"scancel: error: Kill job error on job id {UNKNOWN_ID}: Invalid job id specified\n"
    )
    assert slurm.scancel_unknown_job(verbose.stderr)
    quiet = await backend.command.run(slurm.as_user(backend.user, ["scancel", UNKNOWN_ID], backend.slurm_helper))
    assert (quiet.exit_status, quiet.stdout, quiet.stderr) == (0, "", "")


async def test_scancel_of_another_users_job_is_denied(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, "--hold")
    try:
        out = await scancel(backend, job_id, user=backend.other_user)
        assert out.exit_status == 210
        assert out.stderr == (
            f"scancel: Terminating job {job_id}\n"
            f"scancel: error: Kill job error on job id {job_id}: Access/permission denied\n"
        )
        assert not slurm.scancel_unknown_job(out.stderr)
        assert (await squeue(backend, [job_id]))[job_id]["slurm-state"] == "PENDING"
    finally:
        await scancel(backend, job_id)


async def test_ended_jobs_in_sacct_with_exit_codes_and_scancel_after_the_end(backend: Backend) -> None:
    done = await submit(backend, "#!/bin/bash\ntrue\n", tag="done")
    failed = await submit(backend, "#!/bin/bash\nexit 3\n", tag="failed")
    assert (await wait_accounted(backend, done, {"COMPLETED"}, slurm.job_name("done")))["exit-code"] == "0:0"
    row = await wait_accounted(backend, failed, {"FAILED"}, slurm.job_name("failed"))
    assert row["exit-code"] == "3:0"
    assert row["end-reason"] == "FAILED"
    assert row["job-name"] == slurm.job_name("failed")
    rows = await sacct(backend, [done, failed])  # one call for both
    assert [rows[done]["slurm-state"], rows[failed]["slurm-state"]] == ["COMPLETED", "FAILED"]
    assert slurm.bwvisu_state(rows[failed]["slurm-state"]).value == "finished"
    out = await scancel(backend, done)
    assert out.exit_status == 0
    assert out.stderr == (
        f"scancel: Terminating job {done}\n"
        f"scancel: error: Kill job error on job id {done}: Job/step already completing or completed\n"
    )


async def test_squeue_of_unknown_ids(backend: Backend) -> None:
    out = await backend.command.run(slurm.squeue_argv([UNKNOWN_ID]))
    assert (out.exit_status, out.stdout, out.stderr) == (1, "", "slurm_load_jobs error: Invalid job id specified\n")
    assert slurm.squeue_missing_ids(out.exit_status, out.stderr)
    two = await backend.command.run(slurm.squeue_argv([UNKNOWN_ID, "999998"]))
    assert slurm.squeue_missing_ids(two.exit_status, two.stderr) or (two.ok and two.stdout == "")
    assert (two.exit_status, two.stdout, two.stderr) == (0, "", "")


async def test_sacct_of_an_unknown_id_is_empty(backend: Backend) -> None:
    assert await sacct(backend, [UNKNOWN_ID]) == {}


async def test_sbatch_errors(backend: Backend) -> None:
    base = slurm.sbatch_argv(backend.user, "bad", backend.workdir(backend.user), backend.slurm_helper)
    partition = await backend.command.run([*base, "--partition=nosuch"], stdin=SLEEP)
    assert (partition.exit_status, partition.stdout) == (1, "")
    assert partition.stderr == (
        "sbatch: error: invalid partition specified: nosuch\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    assert slurm.SlurmErrorText.from_stderr(partition.stderr).text == (
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    # As a directive, not an option: sbatch rejects a bad option before reading stdin, and a client still
    # sending the script then sees the channel close (a race on real sshd too).
    time_limit = await backend.command.run(base, stdin="#!/bin/bash\n#SBATCH --time=bogus\nsleep 1\n")
    assert (time_limit.exit_status, time_limit.stderr) == (255, "sbatch: error: Invalid --time specification\n")
    shebang = await backend.command.run(base, stdin="sleep 1\n")
    assert shebang.exit_status == 1
    assert shebang.stderr.startswith("sbatch: error: This does not look like a batch script.")
    nobody = await backend.command.run(
        slurm.sbatch_argv("nosuchuser", "bad", "/tmp", backend.slurm_helper), stdin=SLEEP
    )
    assert (nobody.exit_status, nobody.stdout) == (67, "")
    assert nobody.stderr == "bwvisu-slurm-as: refused: unknown user nosuchuser\n"


async def test_sudo_of_an_unknown_user_with_bwvisus_rules(compat_backend: Backend) -> None:
    backend = compat_backend
    nobody = await backend.command.run(slurm.sbatch_argv("nosuchuser", "bad", "/tmp"), stdin=SLEEP)
    assert nobody.exit_status == 1
    assert nobody.stderr.startswith("sudo: unknown user nosuchuser\n")
    job_id = await submit(backend, SLEEP, "--hold")  # the default path still submits and cancels
    out = await scancel(backend, job_id)
    assert (out.exit_status, out.stderr) == (0, f"scancel: Terminating job {job_id}\n")


async def test_getent_passwd(backend: Backend) -> None:
    out = await backend.command.run(slurm.getent_argv(backend.user))
    assert out.exit_status == 0
    account = slurm.parse_getent_passwd(out.stdout, backend.user)
    assert account is not None
    assert (account.name, account.home, account.shell) == (backend.user, backend.workdir(backend.user), "/bin/bash")
    assert account.uid >= 1000  # an ordinary user, as the runner requires
    root = await backend.command.run(slurm.getent_argv("root"))
    assert slurm.parse_getent_passwd(root.stdout, "root") == slurm.Account("root", 0, 0, "/root", "/bin/bash")
    unknown = await backend.command.run(slurm.getent_argv("nosuchuser"))
    assert (unknown.exit_status, unknown.stdout, unknown.stderr) == (2, "", "")
    assert slurm.parse_getent_passwd(unknown.stdout, "nosuchuser") is None


async def test_multi_node_job_sees_its_nodelist_in_hostlist_syntax(backend: Backend) -> None:
    script = '#!/bin/bash\necho "$SLURM_JOB_NODELIST $SLURM_NNODES"\n'
    job_id = await submit(backend, script, "--nodes=2", tag="multi")
    row = await wait_accounted(backend, job_id, {"COMPLETED"}, slurm.job_name("multi"))
    nodelist = row["node-list"]
    hosts = hostlist.expand(nodelist)
    assert sorted(hosts) == sorted(backend.compute_hosts[:2])
    assert nodelist == hostlist.compress(hosts)
    assert "[" in nodelist  # compressed, not a comma list
    log = await backend.read_file(hosts[0], f"{backend.workdir(backend.user)}/bwvisu-job-{job_id}.out")
    assert log == f"{nodelist} 2\n"
