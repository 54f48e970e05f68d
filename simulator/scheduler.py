"""The simulated slurmctld: partitions, compute nodes with CPUs, a FIFO queue and the job life cycle.

Scheduling is event-driven: a pass runs (once per loop iteration, however many events asked for it)
after a submission, a job's release or a node coming back; time limits, KillWait and MinJobAge are
``loop.call_later`` timers. Nothing polls per job, so 10,000 jobs cost memory, not CPU.
Allocation is first-fit on whole nodes' free CPUs, strictly in priority (= submission) order per
partition and without backfill: the first job that does not fit waits with reason ``Resources`` and
every later job in its partition with ``Priority``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from simulator.config import ClusterConfig, Role, TimingConfig
from simulator.jobs import FINISHED, Job, JobSpec, JobState

log = logging.getLogger(__name__)


class SlurmError(Exception):
    """A request slurmctld rejects; ``message`` is Slurm's error text (``slurm_strerror``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


INVALID_JOB_ID = "Invalid job id specified"
INVALID_PARTITION = "Invalid partition name specified"
NODE_CONFIG_UNAVAILABLE = "Requested node configuration is not available"
ALREADY_DONE = "Job/step already completing or completed"
ACCESS_DENIED = "Access/permission denied"
_NEVER_STARTS = frozenset({"PartitionTimeLimit", "PartitionConfig", "JobHeldUser"})


@dataclass(eq=False)
class ComputeNode:
    """A compute node as the scheduler sees it."""

    name: str
    address: str
    cpus: int
    memory_mb: int = 4000
    alloc_cpus: int = 0
    down: bool = False
    jobs: set[int] = field(default_factory=set)

    @property
    def free_cpus(self) -> int:
        return 0 if self.down else self.cpus - self.alloc_cpus


@dataclass
class Partition:
    name: str
    nodes: list[ComputeNode]
    default: bool
    max_time: int | None
    default_time: int | None
    pending: dict[int, Job] = field(default_factory=dict)
    """Pending jobs in priority order (a dict as an ordered set)."""


class JobExecutor(Protocol):
    """Runs a started job's batch step (a process or a behaviour) on its first node."""

    def start(self, job: Job, node: ComputeNode, on_exit: Callable[[int], None]) -> None:
        """Start the job; call ``on_exit(returncode)`` (negative = killed by that signal) when it ends."""

    def terminate(self, job: Job, grace: float) -> None:
        """SIGTERM the job's processes now and SIGKILL them after ``grace`` seconds."""

    def signal(self, job: Job, signum: int) -> None:
        """Deliver ``signum`` to the job's processes without ending the job."""


class Scheduler:
    """Job table, queue and node allocation of one simulated cluster."""

    def __init__(self, config: ClusterConfig, addresses: dict[str, str], executor: JobExecutor) -> None:
        self.timing: TimingConfig = config.timing
        self.executor = executor
        self.nodes: dict[str, ComputeNode] = {
            n.name: ComputeNode(n.name, addresses[n.name], n.cpus, n.memory_mb)
            for n in config.nodes
            if Role.COMPUTE in n.roles
        }
        self.partitions: dict[str, Partition] = {}
        for p in config.partitions:
            members = [self.nodes[name] for name in p.nodes] if p.nodes else list(self.nodes.values())
            self.partitions[p.name] = Partition(p.name, members, p.default, p.max_time_minutes, p.default_time_minutes)
        self.jobs: dict[int, Job] = {}
        self._next_id = config.first_job_id
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._later: list[asyncio.TimerHandle] = []
        self._schedule_pending = False
        self.paused = False
        """While True no job starts (a test knob: makes PENDING observable)."""

    @property
    def default_partition(self) -> Partition:
        return next(p for p in self.partitions.values() if p.default)

    # --- requests -----------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> Job:
        """Queue a job; raises :class:`SlurmError` with Slurm's text for an impossible request."""
        partition = self.default_partition if spec.partition is None else self.partitions.get(spec.partition)
        if partition is None:
            raise SlurmError(INVALID_PARTITION)
        ntasks = spec.ntasks
        if ntasks is None:
            ntasks = spec.nodes * (spec.ntasks_per_node or 1)
        cpus_per_node = math.ceil(ntasks / spec.nodes) * spec.cpus_per_task
        if ntasks < spec.nodes or not any(n.cpus >= cpus_per_node for n in self.nodes.values()):
            raise SlurmError(NODE_CONFIG_UNAVAILABLE)
        fitting = [n for n in partition.nodes if n.cpus >= cpus_per_node]
        limit = spec.time_limit if spec.time_limit_given else partition.default_time or partition.max_time
        job_id = self._next_id
        self._next_id += 1
        job = Job(
            job_id=job_id,
            spec=spec,
            partition=partition.name,
            num_tasks=ntasks,
            cpus_per_node=cpus_per_node,
            time_limit=limit,
            stdout=expand_pattern(spec.stdout or "slurm-%j.out", job_id, spec),
            stderr=expand_pattern(spec.stderr or spec.stdout or "slurm-%j.out", job_id, spec),
            priority=0 if spec.hold else max(4294901760 - job_id, 1),
            node_memory_mb=max((n.memory_mb for n in partition.nodes), default=0),
            minute_seconds=self.timing.minute_seconds,
        )
        self.jobs[job_id] = job
        partition.pending[job_id] = job
        job.reason = "Priority" if len(partition.pending) > 1 else "None"
        # EnforcePartLimits=NO: accepted, but never started
        if partition.max_time is not None and (limit is None or limit > partition.max_time):
            job.reason = "PartitionTimeLimit"
        if spec.nodes > len(fitting):
            job.reason = "PartitionConfig"
        if spec.hold:
            job.reason = "JobHeldUser"
        log.info("job %d submitted by %s to %s", job_id, spec.user, partition.name)
        self.request_schedule()
        return job

    def cancel(self, job_id: int, by_uid: int, by_user: str, signum: int | None = None) -> None:
        """scancel: end the job (or only signal it); raises :class:`SlurmError` as slurmctld does."""
        job = self.jobs.get(job_id)
        if job is None or job.purged:
            raise SlurmError(INVALID_JOB_ID)
        if by_uid not in (0, job.spec.uid):
            raise SlurmError(ACCESS_DENIED)
        if job.state in FINISHED:
            raise SlurmError(ALREADY_DONE)
        if signum is not None:
            if job.state is JobState.RUNNING:
                self.executor.signal(job, signum)
            return
        log.info("job %d cancelled by %s", job_id, by_user)
        if job.state is JobState.PENDING:
            self.partitions[job.partition].pending.pop(job_id, None)
            now = time.time()
            job.state, job.cancelled_by = JobState.CANCELLED, by_uid
            job.start_time = job.end_time = now  # the reason it waited for stays, as slurmctld keeps it
            self._arm_purge(job)
            self.request_schedule()
            return
        job.cancelled_by = by_uid
        self._end_running(job, JobState.CANCELLED, grace=self.timing.kill_wait_seconds)

    def release(self, job_id: int) -> None:
        """``scontrol release``: a held job becomes eligible to start."""
        job = self.jobs[job_id]
        if job.state is JobState.PENDING and job.spec.hold:
            job.spec.hold = False
            job.priority = max(4294901760 - job_id, 1)
            job.reason = "None"
            self.request_schedule()

    def fail_node(self, name: str) -> None:
        """The node dies: it goes DOWN and every job on it ends NODE_FAIL."""
        node = self.nodes[name]
        node.down = True
        log.warning("node %s failed", name)
        for job_id in sorted(node.jobs):
            job = self.jobs[job_id]
            if job.state is JobState.RUNNING:
                job.reason = "NodeDown"
                self._end_running(job, JobState.NODE_FAIL, grace=0.0)

    def resume_node(self, name: str) -> None:
        self.nodes[name].down = False
        self.request_schedule()

    def visible_jobs(self) -> list[Job]:
        """Jobs slurmctld still holds (not purged after MinJobAge), in id order."""
        return [j for j in self.jobs.values() if not j.purged]

    # --- scheduling ---------------------------------------------------------------------------

    def request_schedule(self) -> None:
        if not self._schedule_pending:
            self._schedule_pending = True
            asyncio.get_running_loop().call_soon(self._schedule)

    def _schedule(self) -> None:
        self._schedule_pending = False
        if self.paused:
            return
        for partition in self.partitions.values():
            blocked = False
            for job in list(partition.pending.values()):
                if job.reason in _NEVER_STARTS:
                    continue
                if blocked:
                    job.reason = "Priority"
                    continue
                chosen = self._fit(partition, job)
                if chosen is None:
                    job.reason = "Resources"
                    blocked = True
                    continue
                del partition.pending[job.job_id]
                self._start(job, chosen)

    def _fit(self, partition: Partition, job: Job) -> list[ComputeNode] | None:
        chosen: list[ComputeNode] = []
        required = job.spec.req_nodes
        for node in sorted(partition.nodes, key=lambda n: n.name not in required):  # --nodelist's nodes first
            if node.free_cpus < job.cpus_per_node:
                if node.name in required:
                    return None
            else:
                chosen.append(node)
                if len(chosen) == job.spec.nodes:
                    return chosen
        return None

    def _start(self, job: Job, nodes: list[ComputeNode]) -> None:
        for node in nodes:
            node.alloc_cpus += job.cpus_per_node
            node.jobs.add(job.job_id)
        job.nodes = [n.name for n in nodes]
        job.state, job.reason, job.start_time = JobState.RUNNING, "None", time.time()
        log.info("job %d started on %s", job.job_id, ",".join(job.nodes))
        loop = asyncio.get_running_loop()
        if job.time_limit is not None:
            # slurmctld's periodic check ends a job after its limit, never on it: one second (of the limit's
            # pace) past it, so its time left reads INVALID as on a real cluster
            delay = (job.time_limit * 60 + 1) * self.timing.minute_seconds / 60
            self._timers[job.job_id] = loop.call_later(delay, self._time_out, job)
        self.executor.start(job, nodes[0], lambda rc: self._batch_exited(job, rc))

    def _time_out(self, job: Job) -> None:
        self._timers.pop(job.job_id, None)
        if job.state is JobState.RUNNING:
            log.info("job %d reached its time limit", job.job_id)
            job.reason = "TimeLimit"  # FAIL_TIMEOUT
            self._end_running(job, JobState.TIMEOUT, grace=self.timing.kill_wait_seconds)

    def _end_running(self, job: Job, state: JobState, grace: float) -> None:
        timer = self._timers.pop(job.job_id, None)
        if timer is not None:
            timer.cancel()
        job.state, job.completing, job.end_time = state, True, time.time()
        self.executor.terminate(job, grace)

    def _batch_exited(self, job: Job, returncode: int) -> None:
        code, sig = (returncode, 0) if returncode >= 0 else (0, -returncode)
        job.batch_exit_code, job.batch_signal = code, sig
        if job.state is JobState.RUNNING:
            timer = self._timers.pop(job.job_id, None)
            if timer is not None:
                timer.cancel()
            job.state = JobState.COMPLETED if returncode == 0 else JobState.FAILED
            job.batch_state = job.state
            job.exit_code, job.exit_signal = code, sig
            if code != 0:
                job.reason = "NonZeroExitCode"
            job.end_time = time.time()
            job.completing = True
            log.info("job %d ended %s (exit %d:%d)", job.job_id, job.state, code, sig)
        else:
            job.batch_state = JobState.CANCELLED  # after a node failure too: slurmdbd never hears the step's end
            if sig == 0 and code == 0:
                job.batch_signal = 15
        if self.timing.completing_seconds > 0:
            self._later.append(
                asyncio.get_running_loop().call_later(self.timing.completing_seconds, self._release, job)
            )
        else:
            self._release(job)

    def _release(self, job: Job) -> None:
        for name in job.nodes:
            node = self.nodes[name]
            node.alloc_cpus -= job.cpus_per_node
            node.jobs.discard(job.job_id)
        job.completing = False
        self._arm_purge(job)
        self.request_schedule()

    def _arm_purge(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        self._later.append(loop.call_later(self.timing.min_job_age_seconds, setattr, job, "purged", True))

    def close(self) -> None:
        """Cancel every timer (cluster shutdown)."""
        self.paused = True
        for handle in [*self._timers.values(), *self._later]:
            handle.cancel()
        self._timers.clear()
        self._later.clear()


def expand_pattern(pattern: str, job_id: int, spec: JobSpec) -> str:
    """sbatch's filename patterns (%j, %u, %x, %A, %a, %%), made absolute against the working directory."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%" and i + 1 < len(pattern):
            code = pattern[i + 1]
            value = {"j": str(job_id), "A": str(job_id), "u": spec.user, "x": spec.name, "a": "4294967294"}.get(
                code, "%" if code == "%" else None
            )
            if value is not None:
                out.append(value)
                i += 2
                continue
        out.append(char)
        i += 1
    path = "".join(out)
    return path if path.startswith("/") else f"{spec.work_dir.rstrip('/')}/{path}"
