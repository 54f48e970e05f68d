"""The runner's Slurm glue (:class:`runner.slurm.cluster.SlurmCluster` over :class:`CommandNodes`), asserted
identically on the simulator and on real Slurm 22.05, its error mapping included.

Every call goes through the production :class:`~runner.slurm.cluster.Scheduler` the runner builds, so a pass here
means the runner's own path works on both clusters: what it submits, what it reads back, and how Slurm's refusals
become :mod:`runner.errors`. Only tests about the command line itself (why ``scancel`` runs ``--verbose``, how
real ``sudo`` answers for an unknown user) look at raw commands.
"""

from __future__ import annotations

import re

import pytest

from runner.config import SshSettings
from runner.errors import SchedulerError, SchedulerUnavailable
from runner.slurm import cli as slurm
from runner.slurm import hostlist
from runner.slurm.cluster import CommandNodes, SlurmCluster
from runner.ssh import SshNode
from simulator.etcd import free_port
from tests.contract.backends import Backend
from tests.contract.support import (
    DOWN_RETRY_AFTER,
    cancel,
    sacct,
    scheduler,
    squeue,
    submit,
    wait_accounted,
    wait_state,
    with_directives,
)

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]

SLEEP = "#!/bin/bash\nsleep 300\n"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
UNKNOWN_ID = "999999"


async def test_submit_returns_a_job_id_and_finds_it_by_name(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, "--hold", tag="named")
    try:
        assert job_id.isdigit()
        # what the runner does after an indeterminate sbatch: look the job up by its name
        assert await scheduler(backend).find_by_names([slurm.job_name("named"), "bwvisu-nosuch"]) == {
            slurm.job_name("named"): job_id
        }
    finally:
        await cancel(backend, job_id)


async def test_query_shows_pending_and_running_jobs_in_the_runners_format(backend: Backend) -> None:
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
        await cancel(backend, held)
        await cancel(backend, running)


async def test_cancel_of_a_running_job_then_cancelled_in_query_and_accounting(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, tag="cancelled")
    await wait_state(backend, job_id, {"RUNNING"})
    assert await cancel(backend, job_id) is True
    await wait_state(backend, job_id, {"CANCELLED"})  # -t all keeps ended jobs for MinJobAge
    row = await wait_accounted(backend, job_id, {"CANCELLED"}, slurm.job_name("cancelled"))
    assert re.fullmatch(r"CANCELLED by \d+", row["end-reason"])
    assert row["exit-code"] == "0:0"
    assert TIMESTAMP.fullmatch(row["end-time"])


async def test_an_unknown_job_id_is_absent_from_query_and_accounting_and_not_cancelled(backend: Backend) -> None:
    assert await squeue(backend, [UNKNOWN_ID]) == {}
    assert await squeue(backend, [UNKNOWN_ID, "999998"]) == {}
    assert await sacct(backend, [UNKNOWN_ID]) == {}
    assert await cancel(backend, UNKNOWN_ID) is False


async def test_scancel_without_verbose_says_nothing_of_an_unknown_job(backend: Backend) -> None:
    """Why the runner's ``scancel`` is ``--verbose``: without it an unknown job and a cancelled one look alike."""
    quiet = await backend.command.run(slurm.as_user(backend.user, ["scancel", UNKNOWN_ID], backend.slurm_helper))
    assert (quiet.exit_status, quiet.stdout, quiet.stderr) == (0, "", "")
    verbose = await backend.command.run(slurm.scancel_argv(backend.user, UNKNOWN_ID, backend.slurm_helper))
    assert (verbose.exit_status, verbose.stdout) == (0, "")
    assert slurm.scancel_unknown_job(verbose.stderr)


async def test_cancel_of_another_users_job_is_a_scheduler_error(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, "--hold")
    try:
        with pytest.raises(SchedulerError) as caught:
            await cancel(backend, job_id, user=backend.other_user)
        assert (caught.value.status, caught.value.code) == (502, "scheduler-error")
        assert caught.value.public == (
            f"scancel failed: scancel: error: Kill job error on job id {job_id}: Access/permission denied"
        )
        assert (await squeue(backend, [job_id]))[job_id]["slurm-state"] == "PENDING"
    finally:
        await cancel(backend, job_id)


async def test_ended_jobs_in_accounting_with_exit_codes_and_cancel_after_the_end(backend: Backend) -> None:
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
    # Slurm still knows the job ("already completing or completed", exit 0): nothing to cancel, and no error
    assert await cancel(backend, done) is True


SBATCH_REFUSALS = [
    # As directives, not options: sbatch rejects a bad option before reading stdin, and a client still
    # sending the script then sees the channel close (a race on real sshd too).
    (
        with_directives(SLEEP, "--partition=nosuch"),
        1,
        "sbatch: error: Batch job submission failed: Invalid partition name specified",
    ),
    ("#!/bin/bash\n#SBATCH --time=bogus\nsleep 1\n", 255, "sbatch: error: Invalid --time specification"),
]


@pytest.mark.parametrize(("script", "status", "text"), SBATCH_REFUSALS)
async def test_a_rejected_sbatch_is_a_scheduler_error_with_slurms_reason(
    backend: Backend, script: str, status: int, text: str
) -> None:
    cluster = scheduler(backend)
    with pytest.raises(SchedulerError) as caught:
        await cluster.submit(backend.user, "bad", backend.workdir(backend.user), script)
    assert (caught.value.status, caught.value.code) == (502, "scheduler-error")
    assert caught.value.public == f"sbatch failed: {text}"  # Slurm's last line, which names the reason
    assert caught.value.internal == f"exit {status} on {backend.command.name}"  # where, for the log only
    assert backend.command.name not in caught.value.public


async def test_a_script_without_a_shebang_is_a_scheduler_error(backend: Backend) -> None:
    with pytest.raises(SchedulerError) as caught:
        await scheduler(backend).submit(backend.user, "bad", backend.workdir(backend.user), "sleep 1\n")
    assert caught.value.public.startswith("sbatch failed: sbatch: error: ")
    assert caught.value.internal == f"exit 1 on {backend.command.name}"


async def test_a_user_that_does_not_exist(backend: Backend) -> None:
    assert await scheduler(backend).user_account("nosuchuser") is None
    with pytest.raises(SchedulerError) as caught:
        await scheduler(backend).submit("nosuchuser", "bad", "/tmp", SLEEP)
    assert caught.value.public == "sbatch failed: bwvisu-slurm-as: refused: unknown user nosuchuser"
    assert caught.value.internal == f"exit 67 on {backend.command.name}"


async def test_a_user_that_does_not_exist_with_bwvisus_rules(compat_backend: Backend) -> None:
    backend = compat_backend
    assert await scheduler(backend).user_account("nosuchuser") is None
    with pytest.raises(SchedulerError) as caught:
        await scheduler(backend).submit("nosuchuser", "bad", "/tmp", SLEEP)
    # sudo's own lines; its last one mentioning "error" is the audit plugin's, not "unknown user nosuchuser"
    assert caught.value.public.startswith("sbatch failed: sudo: ")
    assert caught.value.internal == f"exit 1 on {backend.command.name}"
    job_id = await submit(backend, SLEEP, "--hold")  # the default path still submits and cancels
    assert await cancel(backend, job_id) is True
    await wait_state(backend, job_id, {"CANCELLED"})


async def test_user_account(backend: Backend) -> None:
    account = await scheduler(backend).user_account(backend.user)
    assert account is not None
    assert (account.name, account.home, account.shell) == (backend.user, backend.workdir(backend.user), "/bin/bash")
    assert account.uid >= 1000  # an ordinary user, as the runner requires
    assert await scheduler(backend).user_account("root") == slurm.Account("root", 0, 0, "/root", "/bin/bash")


async def test_an_unreachable_command_node_is_skipped_and_all_down_is_unavailable(backend: Backend) -> None:
    settings = SshSettings(connect_timeout=5, command_timeout=10)
    dead = SshNode("127.0.0.1", free_port(), "nobody", settings)  # nothing listens there: refused at once
    nodes = CommandNodes([dead, backend.command], DOWN_RETRY_AFTER)
    cluster = SlurmCluster(nodes, backend.slurm_helper)
    assert await cluster.query([UNKNOWN_ID]) == {}
    assert nodes.up() == 1  # the dead node is marked down; the live one answered
    with pytest.raises(SchedulerUnavailable) as caught:
        await SlurmCluster(CommandNodes([dead], DOWN_RETRY_AFTER)).query([UNKNOWN_ID])
    assert (caught.value.status, caught.value.code) == (503, "scheduler-unavailable")
    assert dead.name in (caught.value.internal or "")
    assert dead.name not in caught.value.public
    await dead.close()


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
