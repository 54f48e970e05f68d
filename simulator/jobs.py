"""The job record the simulated slurmctld keeps, and Slurm's job states with their short codes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class JobState(StrEnum):
    """Slurm base job states (``JOB_*``); COMPLETING is a flag on top of a base state, see :attr:`Job.completing`."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    FAILED = "FAILED"
    NODE_FAIL = "NODE_FAIL"


SHORT_STATE = {
    "PENDING": "PD",
    "RUNNING": "R",
    "COMPLETING": "CG",
    "COMPLETED": "CD",
    "CANCELLED": "CA",
    "TIMEOUT": "TO",
    "FAILED": "F",
    "NODE_FAIL": "NF",
}
"""squeue's compact state codes (%t)."""

LONG_STATE = {short: long for long, short in SHORT_STATE.items()}

NO_TASKS = 0xFFFFFFFE
"""NO_VAL - 1, the task count squeue prints for a job that ended unstarted (scontrol prints N/A)."""
FINISHED = frozenset({JobState.COMPLETED, JobState.CANCELLED, JobState.TIMEOUT, JobState.FAILED, JobState.NODE_FAIL})


@dataclass(eq=False, slots=True)
class JobSpec:
    """What ``sbatch`` asks for, after directives and command-line options are merged."""

    script: str
    user: str
    uid: int
    gid: int
    partition: str | None = None
    name: str = "sbatch"
    nodes: int = 1
    ntasks: int | None = None
    ntasks_per_node: int | None = None
    cpus_per_task: int = 1
    time_limit: int | None = None
    time_limit_given: bool = False
    comment: str | None = None
    work_dir: str = "/"
    stdout: str | None = None
    stderr: str | None = None
    account: str | None = None
    hold: bool = False
    req_nodes: list[str] = field(default_factory=list)
    """``--nodelist``: the nodes the job must run on."""
    requeue: bool = True
    mem_per_node_mb: int | None = None
    mem_per_cpu_mb: int | None = None
    submit_host: str = ""
    submit_env: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class Job:
    """One job as slurmctld (and, once finished, slurmdbd) knows it. Times are epoch seconds."""

    job_id: int
    spec: JobSpec
    partition: str
    num_tasks: int
    cpus_per_node: int
    time_limit: int | None
    stdout: str
    stderr: str
    priority: int
    node_memory_mb: int = 4000
    """The partition nodes' RealMemory: what a job without ``--mem`` asks for on each node."""
    minute_seconds: float = 60.0
    """Real seconds one minute of its time limit lasts (:attr:`~simulator.config.TimingConfig.minute_seconds`)."""
    submit_time: float = field(default_factory=time.time)
    state: JobState = JobState.PENDING
    reason: str = "None"
    completing: bool = False
    start_time: float | None = None
    end_time: float | None = None
    nodes: list[str] = field(default_factory=list)
    exit_code: int = 0
    exit_signal: int = 0
    batch_exit_code: int = 0
    batch_signal: int = 0
    batch_state: JobState | None = None
    cancelled_by: int | None = None
    purged: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def user(self) -> str:
        return self.spec.user

    @property
    def num_nodes(self) -> int:
        return len(self.nodes) if self.nodes else self.spec.nodes

    @property
    def num_cpus(self) -> int:
        return self.cpus_per_node * self.num_nodes

    @property
    def display_state(self) -> str:
        """What squeue shows: COMPLETING while the flag is set, else the base state."""
        return "COMPLETING" if self.completing else self.state.value

    @property
    def short_state(self) -> str:
        return SHORT_STATE[self.display_state]

    @property
    def active(self) -> bool:
        """Shown by squeue without ``-t``: pending, running or completing."""
        return self.state in (JobState.PENDING, JobState.RUNNING) or self.completing

    @property
    def expected_end(self) -> float | None:
        """When the job ended, or will at its limit; ``None`` for an unlimited job (slurmctld's main scheduler
        plans no end for it; backfill would give it a year, which the harness treats as the same)."""
        if self.end_time is not None:
            return self.end_time
        if self.start_time is None or self.time_limit is None:
            return None
        return self.start_time + self.time_limit * 60

    def elapsed(self, now: float | None = None) -> int:
        """Seconds the job has run (0 while pending)."""
        if self.start_time is None:
            return 0
        end = self.end_time if self.end_time is not None else (now if now is not None else time.time())
        return max(int(end - self.start_time), 0)

    def time_left(self, now: float) -> float | None:
        """Seconds of its limit left (negative past it), the run so far counted at the limit's pace; ``None``
        without a limit."""
        if self.time_limit is None:
            return None
        start = self.start_time if self.start_time is not None else now
        end = self.end_time if self.end_time is not None else now
        return self.time_limit * 60 - max(end - start, 0) * 60 / self.minute_seconds

    @property
    def num_tasks_shown(self) -> str:
        """slurmctld drops the task count of a job that ended before it started: NO_VAL - 1."""
        return str(NO_TASKS if self.never_started else self.num_tasks)

    @property
    def never_started(self) -> bool:
        return self.state in FINISHED and not self.nodes

    @property
    def req_mem_mb(self) -> int:
        """The memory asked for, in all (``ReqMem``, ``mem=`` of the requested TRES)."""
        if self.spec.mem_per_cpu_mb is not None:
            return self.spec.mem_per_cpu_mb * self.num_cpus
        per_node = self.spec.mem_per_node_mb if self.spec.mem_per_node_mb is not None else self.node_memory_mb
        return per_node * self.num_nodes

    @property
    def min_memory(self) -> str:
        """squeue's MinMemory: the per-CPU or per-node request, 0 without ``--mem``."""
        if self.spec.mem_per_cpu_mb is not None:
            return f"{self.spec.mem_per_cpu_mb}M"
        return "0" if self.spec.mem_per_node_mb is None else f"{self.spec.mem_per_node_mb}M"

    def tres(self) -> str:
        """scontrol's and squeue's TRES: allocated once started (CR_CPU: memory is not counted), else requested."""
        mem = "" if self.nodes else f"mem={self.req_mem_mb}M,"
        return f"cpu={self.num_cpus},{mem}node={self.num_nodes},billing={self.num_cpus}"

    def sacct_state(self) -> str:
        """sacct's State text: ``CANCELLED by <uid>`` for a cancelled job."""
        if self.state is JobState.CANCELLED and self.cancelled_by is not None:
            return f"CANCELLED by {self.cancelled_by}"
        return self.state.value
