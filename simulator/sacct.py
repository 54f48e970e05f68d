"""``sacct``: accounting records of every job the cluster ever ran, in Slurm 22.05's layouts.

Without ``-X`` a started script job has a ``.batch`` step line below its allocation line. Fixed-width
output pads each column (JobID, NodeList and similar left-justified, the rest right-justified) and marks
a cut value with ``+``; ``-p``/``-P`` print whole values separated by ``|``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.cliparse import Parser, UsageError
from simulator.commands import CommandContext, CommandResult
from simulator.hostlist import compress
from simulator.jobs import Job, JobState
from simulator.slurmctl import dbd_down_result, slurm, uid_of
from simulator.slurmtime import clock_limit, clock_secs, timestamp

DEFAULT_FIELDS = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"
BRIEF_FIELDS = "JobID,State,ExitCode"


@dataclass
class Row:
    """One sacct line: the allocation or its batch step."""

    job: Job
    step: str | None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id) if self.step is None else f"{self.job.job_id}.{self.step}"

    def state(self) -> str:
        if self.step is None:
            return self.job.sacct_state()
        return (self.job.batch_state or self.job.state).value

    def exit_code(self) -> str:
        if self.step is None:
            return f"{self.job.exit_code}:{self.job.exit_signal}"
        if self.job.state is JobState.NODE_FAIL:  # the step's end never reached slurmdbd: no exit code
            return ""
        return f"{self.job.batch_exit_code}:{self.job.batch_signal}"


Getter = Callable[[Row, float], str]


def _end(row: Row, _now: float) -> str:
    return timestamp(row.job.end_time) if row.job.state is not JobState.RUNNING or row.job.completing else "Unknown"


def _timelimit(job: Job) -> str:
    """A job that has no limit and has not started yet has the partition's, which sacct names so."""
    if job.time_limit is None and not job.spec.time_limit_given and job.state is JobState.PENDING:
        return "Partition_Limit"
    return clock_limit(job.time_limit)


def _nodelist(row: Row, _now: float) -> str:
    if not row.job.nodes:
        return "None assigned"
    return row.job.nodes[0] if row.step == "batch" else compress(row.job.nodes)


def _alloc_tres(row: Row, _now: float) -> str:
    job = row.job
    if not job.nodes:
        return ""
    if row.step is not None:  # the batch step: its host's share, no memory accounted (jobacct_gather/none)
        return f"cpu={job.cpus_per_node},mem=0,node=1"
    return f"billing={job.num_cpus},cpu={job.num_cpus},node={job.num_nodes}"


def _req_tres(row: Row, _now: float) -> str:
    job = row.job
    if row.step is not None:
        return ""
    return f"billing={job.num_cpus},cpu={job.num_cpus},mem={job.req_mem_mb}M,node={job.num_nodes}"


def _reason(row: Row, _now: float) -> str:
    if row.step is not None:
        return ""
    # slurmdbd keeps the reason of the job's last update before it ended by a failed node or its time limit,
    # not slurmctld's NodeDown or TimeLimit
    return "None" if row.job.state in (JobState.NODE_FAIL, JobState.TIMEOUT) else row.job.reason


# lower-case name -> (header, width (negative = left-justified), getter)
FIELDS: dict[str, tuple[str, int, Getter]] = {
    "jobid": ("JobID", -12, lambda r, _: r.job_id),
    "jobidraw": ("JobIDRaw", -12, lambda r, _: r.job_id),
    "jobname": ("JobName", 10, lambda r, _: r.job.name if r.step is None else r.step),
    "partition": ("Partition", 10, lambda r, _: r.job.partition if r.step is None else ""),
    "account": ("Account", 10, lambda r, _: r.job.spec.account or ""),
    "alloccpus": (
        "AllocCPUS",
        10,
        lambda r, _: str(r.job.num_cpus if r.job.nodes or r.job.state is JobState.PENDING else 0),
    ),
    "ncpus": ("NCPUS", 10, lambda r, _: str(r.job.num_cpus)),
    "nnodes": ("NNodes", 8, lambda r, _: str(r.job.num_nodes if r.step is None else 1)),
    "state": ("State", 10, lambda r, _: r.state()),
    "exitcode": ("ExitCode", 8, lambda r, _: r.exit_code()),
    "derivedexitcode": ("DerivedExitCode", 10, lambda r, _: "0:0"),
    "start": ("Start", 19, lambda r, _: timestamp(r.job.start_time)),
    "end": ("End", 19, _end),
    "submit": ("Submit", 19, lambda r, _: timestamp(r.job.submit_time)),
    "elapsed": ("Elapsed", 10, lambda r, now: clock_secs(r.job.elapsed(now))),
    "elapsedraw": ("ElapsedRaw", 10, lambda r, now: str(r.job.elapsed(now))),
    "timelimit": ("Timelimit", 10, lambda r, _: _timelimit(r.job) if r.step is None else ""),
    "nodelist": ("NodeList", -15, _nodelist),
    "reason": ("Reason", -20, _reason),
    "user": ("User", 9, lambda r, _: r.job.user if r.step is None else ""),
    "uid": ("UID", 6, lambda r, _: str(r.job.spec.uid) if r.step is None else ""),
    "group": ("Group", 9, lambda r, _: r.job.user if r.step is None else ""),
    "comment": ("Comment", 15, lambda r, _: (r.job.spec.comment or "") if r.step is None else ""),
    "workdir": ("WorkDir", -20, lambda r, _: r.job.spec.work_dir if r.step is None else ""),
    "cluster": ("Cluster", 10, lambda r, _: "sim"),
    "alloctres": ("AllocTRES", 10, _alloc_tres),
    "reqtres": ("ReqTRES", 10, _req_tres),
    "reqmem": ("ReqMem", 10, lambda r, _: f"{r.job.req_mem_mb}M" if r.step is None else ""),
    "reqcpus": ("ReqCPUS", 8, lambda r, _: str(r.job.num_cpus if r.step is None else r.job.cpus_per_node)),
    "reqnodes": ("ReqNodes", 8, lambda r, _: str(r.job.num_nodes if r.step is None else 1)),
    "ntasks": ("NTasks", 8, lambda r, _: "" if r.step is None else "1"),
    "priority": ("Priority", 10, lambda r, _: str(r.job.priority) if r.step is None else ""),
}


@functools.cache  # built once: argparse parsers are reusable and slow to build
def _parser() -> Parser:
    p = Parser(prog="sacct", add_help=False, allow_abbrev=False)
    p.add_argument("-j", "--jobs", action="append")
    p.add_argument("-n", "--noheader", action="store_true")
    p.add_argument("-P", "--parsable2", action="store_true")
    p.add_argument("-p", "--parsable", action="store_true")
    p.add_argument("-X", "--allocations", action="store_true")
    p.add_argument("-o", "--format")
    p.add_argument("-b", "--brief", action="store_true")
    p.add_argument("-u", "--user", "--uid", action="append")
    p.add_argument("-a", "--allusers", action="store_true")
    p.add_argument("-s", "--state", action="append")
    p.add_argument("-S", "--starttime")
    p.add_argument("-E", "--endtime")
    p.add_argument("-M", "--clusters")
    p.add_argument("-D", "--duplicates", action="store_true")
    return p


def _columns(spec: str) -> list[tuple[str, int, Getter]]:
    columns = []
    for item in spec.split(","):
        if not item:
            continue
        name, _, width = item.partition("%")
        field = FIELDS.get(name.lower())
        if field is None:
            raise UsageError(f'Invalid field requested: "{name}"')
        header, default_width, getter = field
        size = int(width) if width else default_width
        columns.append((header, size if default_width > 0 or not width else -size, getter))
    return columns


PLAIN_CUT = frozenset({"Start", "End", "Submit", "Elapsed"})
"""Fields sacct prints as times: a value too wide is cut without the ``+`` mark (print_fields_date/time)."""


def _cell(value: str, width: int, plain: bool = False) -> str:
    size = abs(width)
    if len(value) > size:
        value = value[:size] if plain else value[: size - 1] + "+"
    return value.ljust(size) if width < 0 else value.rjust(size)


async def sacct(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    service = slurm(ctx)
    try:
        opts = _parser().parse_args(argv[1:])
        fields = opts.format or (BRIEF_FIELDS if opts.brief else DEFAULT_FIELDS)
        columns = _columns(fields)
    except UsageError as exc:
        return CommandResult(1, "", f"sacct: error: {exc}\n")
    if not service.dbd_up:
        return dbd_down_result()
    ids = {int(p.split(".")[0]) for v in opts.jobs or [] for p in v.split(",") if p.split(".")[0].isdigit()}
    users = {u for v in opts.user or [] for u in v.split(",")}
    states = {s.upper() for v in opts.state or [] for s in v.split(",")}
    me_uid = uid_of(ctx)
    jobs = list(service.scheduler.jobs.values())
    if ids:
        jobs = [j for j in jobs if j.job_id in ids]
    elif users:
        jobs = [j for j in jobs if j.user in users or str(j.spec.uid) in users]
    elif not opts.allusers and me_uid != 0:
        jobs = [j for j in jobs if j.spec.uid == me_uid]
    if states:
        jobs = [j for j in jobs if j.state.value in states or j.state.value[:2] in states]
    rows: list[Row] = []
    for job in sorted(jobs, key=lambda j: j.job_id):
        rows.append(Row(job, None))
        if not opts.allocations and job.start_time is not None and job.nodes and job.state is not JobState.PENDING:
            rows.append(Row(job, "batch"))
    now = time.time()
    parsable = opts.parsable or opts.parsable2
    lines: list[str] = []
    if not opts.noheader:
        lines.append(_line([c[0] for c in columns], columns, parsable, opts.parsable))
        if not parsable:
            lines.append(" ".join("-" * abs(c[1]) for c in columns) + " ")
    for row in rows:
        lines.append(_line([c[2](row, now) for c in columns], columns, parsable, opts.parsable))
    return CommandResult(0, "".join(line + "\n" for line in lines))


def _line(values: list[str], columns: list[tuple[str, int, Getter]], parsable: bool, trailing: bool) -> str:
    if parsable:
        return "|".join(values) + ("|" if trailing else "")
    return " ".join(_cell(v, c[1], c[0] in PLAIN_CUT) for v, c in zip(values, columns, strict=True)) + " "
