"""The compute side: running a started job's batch step on its first node.

A normal job's script runs for real (``/bin/bash script``) in its own session and process group, with
Slurm's environment, cwd = ``--chdir`` and stdout/stderr to the ``-o``/``-e`` files; ending the job
signals the whole group (SIGTERM, SIGKILL after KillWait) and anything left when the script exits is
killed, as slurmstepd's cgroup would. A script containing ``#SIM-BEHAVIOUR NAME key=value...`` instead
runs a process-free Python behaviour (see :mod:`simulator.behaviours`), so thousands of jobs are cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import IO

from simulator.behaviours import BehaviourContext, find_behaviour
from simulator.hostlist import compress
from simulator.jobs import Job
from simulator.scheduler import ComputeNode

log = logging.getLogger(__name__)


def job_environment(job: Job, node: ComputeNode, cluster_name: str, home: str, hosts_file: str) -> dict[str, str]:
    """The batch step's environment: Slurm's variables plus the simulator's ``SIM_*`` helpers."""
    nodelist = compress(job.nodes)
    per_node = job.num_tasks // max(job.num_nodes, 1)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": home,
        "USER": job.user,
        "LOGNAME": job.user,
        "SHELL": "/bin/bash",
        "SLURM_CLUSTER_NAME": cluster_name,
        "SLURM_JOB_ID": str(job.job_id),
        "SLURM_JOBID": str(job.job_id),
        "SLURM_JOB_NAME": job.name,
        "SLURM_JOB_USER": job.user,
        "SLURM_JOB_UID": str(job.spec.uid),
        "SLURM_JOB_GID": str(job.spec.gid),
        "SLURM_JOB_PARTITION": job.partition,
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_JOB_NUM_NODES": str(job.num_nodes),
        "SLURM_NNODES": str(job.num_nodes),
        "SLURM_NTASKS": str(job.num_tasks),
        "SLURM_NPROCS": str(job.num_tasks),
        "SLURM_TASKS_PER_NODE": f"{per_node}(x{job.num_nodes})" if job.num_nodes > 1 else str(per_node),
        "SLURM_CPUS_ON_NODE": str(job.cpus_per_node),
        "SLURM_JOB_CPUS_PER_NODE": (
            f"{job.cpus_per_node}(x{job.num_nodes})" if job.num_nodes > 1 else str(job.cpus_per_node)
        ),
        "SLURMD_NODENAME": node.name,
        "SLURM_TOPOLOGY_ADDR": node.name,
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_SUBMIT_DIR": job.spec.work_dir,
        "SLURM_SUBMIT_HOST": job.spec.submit_host,
        "SLURM_JOB_ACCOUNT": job.spec.account or "",
        "ENVIRONMENT": "BATCH",
        "SIM_NODE_ADDR": node.address,
        "SIM_HOSTS_FILE": hosts_file,
    }
    if job.time_limit is not None:
        env["SLURM_JOB_TIME_LIMIT"] = str(job.time_limit)
    if job.spec.comment is not None:
        env["SLURM_JOB_COMMENT"] = job.spec.comment
    return env


class LocalExecutor:
    """Runs batch steps as local processes or behaviours; implements the scheduler's ``JobExecutor``."""

    def __init__(self, spool_dir: Path, cluster_name: str, homes: Callable[[str], str], hosts_file: Path) -> None:
        self._spool = spool_dir
        self._cluster_name = cluster_name
        self._homes = homes
        self._hosts_file = str(hosts_file)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._behaviours: dict[int, asyncio.Task[int]] = {}

    @property
    def running_processes(self) -> dict[int, int]:
        """job id -> pid of its batch shell, for jobs running as processes."""
        return {job_id: proc.pid for job_id, proc in self._procs.items()}

    def start(self, job: Job, node: ComputeNode, on_exit: Callable[[int], None]) -> None:
        env = job_environment(job, node, self._cluster_name, self._homes(job.user), self._hosts_file)
        behaviour = find_behaviour(job.spec.script)
        if behaviour is not None:
            run, params = behaviour
            ctx = BehaviourContext(job=job, address=node.address, env=env, params=params)
            btask: asyncio.Task[int] = asyncio.get_running_loop().create_task(run(ctx), name=f"sim-job-{job.job_id}")
            self._behaviours[job.job_id] = btask
            btask.add_done_callback(lambda t: self._behaviour_done(job, t, on_exit))
            return
        task = asyncio.get_running_loop().create_task(self._run_script(job, env, on_exit), name=f"sim-job-{job.job_id}")
        self._tasks[job.job_id] = task

    def _behaviour_done(self, job: Job, task: asyncio.Task[int], on_exit: Callable[[int], None]) -> None:
        self._behaviours.pop(job.job_id, None)
        if task.cancelled():
            on_exit(-signal.SIGTERM)
            return
        exc = task.exception()
        if exc is not None:
            log.warning("job %d behaviour failed: %r", job.job_id, exc)
            on_exit(1)
            return
        on_exit(task.result())

    async def _run_script(self, job: Job, env: dict[str, str], on_exit: Callable[[int], None]) -> None:
        returncode = 1
        try:
            returncode = await self._spawn_and_wait(job, env)
        except OSError as exc:
            log.warning("job %d could not start: %s", job.job_id, exc)
        finally:
            self._tasks.pop(job.job_id, None)
            on_exit(returncode)

    def _prepare(self, job: Job, stack: contextlib.ExitStack) -> tuple[Path, str, IO[bytes], IO[bytes]]:
        """Write the script to the spool, open the output files, pick the cwd (as slurmstepd does)."""
        job_dir = self._spool / f"job{job.job_id:05d}"
        job_dir.mkdir(parents=True, exist_ok=True)
        script = job_dir / "slurm_script"
        script.write_text(job.spec.script)
        script.chmod(0o700)
        out = stack.enter_context(Path(job.stdout).open("wb"))  # noqa: SIM115 - the ExitStack closes it
        err = out
        if job.stderr != job.stdout:
            err = stack.enter_context(Path(job.stderr).open("wb"))  # noqa: SIM115
        cwd = job.spec.work_dir
        if not Path(cwd).is_dir():
            err.write(
                f"slurmstepd: error: couldn't chdir to `{cwd}': No such file or directory: "
                "going to /tmp instead\n".encode()
            )
            err.flush()
            cwd = "/tmp"  # noqa: S108 - what slurmstepd does
        return script, cwd, out, err

    async def _spawn_and_wait(self, job: Job, env: dict[str, str]) -> int:
        with contextlib.ExitStack() as stack:
            script, cwd, out, err = self._prepare(job, stack)
            proc = await asyncio.create_subprocess_exec(
                "/bin/bash",
                str(script),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        self._procs[job.job_id] = proc
        log.debug("job %d batch shell pid %d", job.job_id, proc.pid)
        try:
            returncode = await proc.wait()
        finally:
            self._procs.pop(job.job_id, None)
            _killpg(proc.pid, signal.SIGKILL)  # what the job's cgroup would do to leftovers
        return returncode

    def terminate(self, job: Job, grace: float) -> None:
        btask = self._behaviours.get(job.job_id)
        if btask is not None:
            btask.cancel()
            return
        proc = self._procs.get(job.job_id)
        if proc is None:
            task = self._tasks.get(job.job_id)
            if task is not None:  # still spawning: let it start, then end it
                asyncio.get_running_loop().call_later(0.01, self.terminate, job, grace)
            return
        if grace <= 0:
            _killpg(proc.pid, signal.SIGKILL)
            return
        _killpg(proc.pid, signal.SIGCONT)
        _killpg(proc.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(grace, _killpg, proc.pid, signal.SIGKILL)

    def signal(self, job: Job, signum: int) -> None:
        proc = self._procs.get(job.job_id)
        if proc is not None:
            _killpg(proc.pid, signum)

    async def close(self) -> None:
        """Kill every job process and behaviour (cluster shutdown)."""
        for proc in list(self._procs.values()):
            _killpg(proc.pid, signal.SIGKILL)
        for btask in list(self._behaviours.values()):
            btask.cancel()
        pending = [*self._tasks.values(), *self._behaviours.values()]
        if pending:
            await asyncio.wait(pending, timeout=10)


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
