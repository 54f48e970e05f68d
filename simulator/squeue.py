"""``squeue`` with Slurm 22.05's options and output: ``-o`` letters, ``-O`` field names, widths, default sort.

Field widths follow squeue's ``_print_str``: with a width the value is padded and cut to it (``.`` =
right-justified), without one it is printed whole. ``-O`` fields default to 20 columns.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.cliparse import Parser, UsageError
from simulator.commands import CommandContext, CommandResult
from simulator.hostlist import compress
from simulator.jobs import LONG_STATE, SHORT_STATE, Job, JobState
from simulator.slurmctl import CONNECT_FAILURE, slurm
from simulator.slurmtime import squeue_limit, squeue_secs, timestamp
from simulator.squeue_json import squeue_json

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"

Getter = Callable[[Job, float], str]


def _reason_list(job: Job, _now: float) -> str:
    if job.state in (JobState.PENDING, JobState.TIMEOUT, JobState.FAILED):
        return f"({job.reason})"
    return compress(job.nodes)


def _time_left(job: Job, now: float) -> str:
    left = job.time_left(now)
    if left is None:
        return "UNLIMITED"
    return "INVALID" if left < 0 else squeue_secs(int(left))  # a job past its limit (TIMEOUT, KillWait included)


def _end_time(job: Job, _now: float) -> str:
    # a started job without a planned end is NONE, one that has not started N/A
    return timestamp(job.expected_end, "N/A" if job.start_time is None else "NONE")


# letter -> (-O field name, title, getter)
FIELDS: dict[str, tuple[str, str, Getter]] = {
    "i": ("JobID", "JOBID", lambda j, _: str(j.job_id)),
    "A": ("JobArrayID", "JOBID", lambda j, _: str(j.job_id)),
    "j": ("Name", "NAME", lambda j, _: j.name),
    "u": ("UserName", "USER", lambda j, _: j.user),
    "U": ("UserID", "UID", lambda j, _: str(j.spec.uid)),
    "g": ("GroupName", "GROUP", lambda j, _: j.user),
    "G": ("GroupID", "GROUP", lambda j, _: str(j.spec.gid)),
    "T": ("State", "STATE", lambda j, _: j.display_state),
    "t": ("StateCompact", "ST", lambda j, _: j.short_state),
    "M": ("TimeUsed", "TIME", lambda j, now: squeue_secs(j.elapsed(now))),
    "l": ("TimeLimit", "TIME_LIMIT", lambda j, _: squeue_limit(j.time_limit)),
    "L": ("TimeLeft", "TIME_LEFT", _time_left),
    "D": ("NumNodes", "NODES", lambda j, _: str(j.num_nodes)),
    "C": ("NumCPUs", "CPUS", lambda j, _: str(j.num_cpus)),
    "c": ("MinCpus", "MIN_CPUS", lambda j, _: str(j.spec.cpus_per_task)),
    "m": ("MinMemory", "MIN_MEMORY", lambda j, _: j.min_memory),
    "R": ("ReasonList", "NODELIST(REASON)", _reason_list),
    "r": ("Reason", "REASON", lambda j, _: j.reason),
    "N": ("NodeList", "NODELIST", lambda j, _: compress(j.nodes)),
    "B": ("BatchHost", "EXEC_HOST", lambda j, _: j.nodes[0] if j.nodes else "n/a"),
    "k": ("Comment", "COMMENT", lambda j, _: j.spec.comment or "(null)"),
    "P": ("Partition", "PARTITION", lambda j, _: j.partition),
    "S": ("StartTime", "START_TIME", lambda j, _: timestamp(j.start_time, "N/A")),
    "V": ("SubmitTime", "SUBMIT_TIME", lambda j, _: timestamp(j.submit_time)),
    "e": ("EndTime", "END_TIME", _end_time),
    "Z": ("WorkDir", "WORK_DIR", lambda j, _: j.spec.work_dir),
    "a": ("Account", "ACCOUNT", lambda j, _: j.spec.account or "(null)"),
    "q": ("QOS", "QOS", lambda j, _: "normal"),
    "Q": ("Priority", "PRIORITY", lambda j, _: str(j.priority)),
    "o": ("Command", "COMMAND", lambda j, _: "(null)"),
    "E": ("Dependency", "DEPENDENCY", lambda j, _: "(null)"),
}
_BY_NAME = {name.lower(): (title, getter) for name, title, getter in FIELDS.values()}
_BY_NAME.update(
    {
        "stdout": ("STDOUT", lambda j, _: j.stdout),
        "stderr": ("STDERR", lambda j, _: j.stderr),
        "numtasks": ("TASKS", lambda j, _: j.num_tasks_shown),
        "tres-alloc": ("TRES_ALLOC", lambda j, _: j.tres()),
        "cluster": ("CLUSTER", lambda j, _: "sim"),
        "username": ("USER", lambda j, _: j.user),
        "jobid": ("JOBID", lambda j, _: str(j.job_id)),
    }
)


@dataclass
class Column:
    title: str
    getter: Getter | None
    width: int
    right: bool
    literal: str = ""

    def render(self, value: str) -> str:
        if self.width <= 0:
            return value
        if self.title in _NODE_TITLES and not value.startswith("("):
            return value.rjust(self.width) if self.right else value.ljust(self.width)  # squeue never cuts a node list
        return value[: self.width].rjust(self.width) if self.right else value[: self.width].ljust(self.width)


_NODE_TITLES = ("NODELIST", "NODELIST(REASON)")
VALID_STATES = (
    "PENDING,RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,PREEMPTED,BOOT_FAIL,DEADLINE,"
    "OUT_OF_MEMORY,COMPLETING,CONFIGURING,RESIZING,RESV_DEL_HOLD,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,"
    "SIGNALING,SPECIAL_EXIT,STAGE_OUT,STOPPED"
)


class FormatError(ValueError):
    pass


def parse_format(fmt: str) -> list[Column]:
    """``-o`` format: ``%[.][width]letter`` fields and literal text between them."""
    columns: list[Column] = []
    for match in re.finditer(r"%(\.?)(\d*)([A-Za-z%])|([^%]+)", fmt):
        right, width, letter, literal = match.groups()
        if literal is not None:
            columns.append(Column("", None, 0, False, literal))
        elif letter == "%":
            columns.append(Column("", None, 0, False, "%"))
        elif letter in FIELDS:
            _, title, getter = FIELDS[letter]
            columns.append(Column(title, getter, int(width or 0), bool(right)))
        else:
            columns.append(Column("", None, 0, False, ""))  # squeue ignores unknown letters
    return columns


def parse_format_long(spec: str, unknown: list[str] | None = None) -> list[Column]:
    """``-O`` format: comma-separated ``name[:[.][width][suffix]]``: 20 columns without ``:``, the whole value
    with a ``:`` but no width; the suffix is printed after the field. An unknown name is left out and added to
    ``unknown`` (squeue complains and prints the rest), or raises :class:`FormatError` without that list."""
    columns: list[Column] = []
    for item in spec.split(","):
        name, colon, size = item.partition(":")
        field = _BY_NAME.get(name.strip().lower())
        if field is None:
            if unknown is None:
                raise FormatError(name)
            unknown.append(name)
            continue
        match = re.fullmatch(r"(\.?)(\d*)(.*)", size, re.DOTALL)
        assert match is not None  # every string matches
        right, digits, suffix = match.groups()
        width = int(digits) if digits else (0 if colon else 20)
        columns.append(Column(field[0], field[1], width, bool(right)))
        if suffix:
            columns.append(Column("", None, 0, False, suffix))
    return columns


def render(jobs: list[Job], columns: list[Column], header: bool, now: float) -> str:
    lines: list[str] = []
    if header:
        lines.append("".join(c.literal if c.getter is None else c.render(c.title) for c in columns))
    for job in jobs:
        lines.append("".join(c.literal if c.getter is None else c.render(c.getter(job, now)) for c in columns))
    return "".join(line + "\n" for line in lines)


@functools.cache  # built once: argparse parsers are reusable and slow to build
def _parser() -> Parser:
    p = Parser(prog="squeue", add_help=False, allow_abbrev=False)
    p.add_argument("-h", "--noheader", action="store_true")
    p.add_argument("-j", "--jobs", action="append", nargs="?", const="")  # bare -j: every job
    p.add_argument("-u", "--user", action="append")
    p.add_argument("--me", action="store_true")
    p.add_argument("-t", "--states", action="append")
    p.add_argument("-p", "--partition", action="append")
    p.add_argument("-n", "--name", action="append")
    p.add_argument("-w", "--nodelist", action="append")
    p.add_argument("-o", "--format")
    p.add_argument("-O", "--Format")
    p.add_argument("-l", "--long", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-r", "--array", action="store_true")
    p.add_argument("-S", "--sort")
    p.add_argument("-M", "--clusters")
    p.add_argument("--json", action="store_true")
    p.add_argument("job_ids", nargs="*")
    return p


def _split(values: list[str] | None) -> list[str]:
    return [v for value in values or [] for v in value.split(",") if v]


def _states(values: list[str]) -> set[str] | None:
    wanted: set[str] = set()
    for value in values:
        upper = value.upper()
        if upper == "ALL":
            return None
        long = LONG_STATE.get(upper, upper)
        if long not in SHORT_STATE:
            # squeue's error() texts end in "\n" of their own: a blank line follows
            raise UsageError(
                f"Invalid job state specified: {value}\nsqueue: error: Valid job states include: {VALID_STATES}\n"
            )
        wanted.add(long)
    return wanted


def _parse(argv: list[str]) -> tuple[argparse.Namespace, set[str] | None, list[Column], list[str]]:
    """``(options, states asked for (None: all), columns, unknown -O names)``; raises on a wrong line."""
    if any(a.startswith("--json=") for a in argv[1:]):
        raise UsageError("option '--json' doesn't allow an argument")
    opts = _parser().parse_args(argv[1:])
    states = _states(_split(opts.states)) if opts.states else set()
    unknown: list[str] = []
    if opts.json:  # --json prints no columns: formats are not even read
        return opts, states, [], unknown
    if opts.Format:
        return opts, states, parse_format_long(opts.Format, unknown), unknown
    return opts, states, parse_format(opts.format or (LONG_FORMAT if opts.long else DEFAULT_FORMAT)), unknown


async def squeue(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    service = slurm(ctx)
    try:
        opts, states, columns, unknown = _parse(argv)
    except UsageError as exc:
        text = str(exc)
        if text.startswith(("unrecognized option", "invalid option", "option '")):
            return CommandResult(1, "", f'squeue: {text}\nTry "squeue --help" for more information\n')
        return CommandResult(1, "", f"squeue: error: {exc}\n")
    except FormatError as exc:
        return CommandResult(1, "", f"Invalid job format specification: {exc}\n")
    if not service.controller_up:
        return CommandResult(1, "", f"slurm_load_jobs error: {CONNECT_FAILURE}\n")
    if opts.json:  # 22.05 dumps every job slurmctld holds, whatever else was asked
        groups = {a.uid: a.name for a in service.users.all()}
        return CommandResult(0, squeue_json(service.scheduler.visible_jobs(), service.cluster_name, groups))
    return _listing(ctx, opts, states, columns, unknown)


def _listing(
    ctx: CommandContext, opts: argparse.Namespace, states: set[str] | None, columns: list[Column], unknown: list[str]
) -> CommandResult:
    service = slurm(ctx)
    job_ids = {int(j) for j in _split(opts.jobs) + _split(opts.job_ids) if j.isdigit()}
    users = set(_split(opts.user))
    if opts.me:
        users.add(ctx.user)
    # an unknown user is complained about (error() with its own "\n") and matches no job; squeue goes on
    complaints = "".join(f"squeue: error: Invalid user: {n}\n\n" for n in sorted(users) if service.users.get(n) is None)
    sched = service.scheduler
    if len(job_ids) == 1:
        single = sched.jobs.get(next(iter(job_ids)))
        if single is None or single.purged:
            return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified\n")
        candidates = [single]
    else:
        candidates = sched.visible_jobs()
    partitions, names, nodes = set(_split(opts.partition)), set(_split(opts.name)), set(_split(opts.nodelist))
    selected = [
        j
        for j in candidates
        if (not job_ids or j.job_id in job_ids)
        and (not users or j.user in users)
        and (not partitions or j.partition in partitions)
        and (not names or j.name in names)
        and (not nodes or nodes.intersection(j.nodes))
        and (j.active if states == set() else states is None or j.display_state in states)
    ]
    # squeue's default sort "P,t,-p": its state key compares the states' long names as strings (sort.c); the
    # sort is stable and slurmctld sends its newest jobs first, so equal priorities (held jobs) are newest first
    selected.sort(key=lambda j: (j.partition, j.display_state, -j.priority, -j.job_id))
    complaints += "".join(f"squeue: error: Invalid job format specification: {name}\n" for name in unknown)
    now = time.time()
    # -l prints the date first, as squeue's print_date() does (header or not)
    dated = time.strftime("%a %b %d %H:%M:%S %Y\n", time.localtime(now)) if opts.long else ""
    return CommandResult(0, dated + render(selected, columns, not opts.noheader, now), complaints)
