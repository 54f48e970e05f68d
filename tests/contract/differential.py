"""Differential harness: the same Slurm command lines on the real cluster and on the simulator, compared.

Both clusters get the same jobs from the same scripts, submitted in the same order (:func:`produce_jobs`), then
every command line of :func:`vocabulary` runs over SSH exactly as the runner runs it (``sudo -n -u USER`` where
the runner uses it). Outputs are compared line by line after :func:`normalise` masks what legitimately differs:
job ids (mapped by the role of the job), times and dates, durations, process ids; a ``squeue --json`` dump is
compared on the round's jobs (:func:`normalise_dump`). Run for people with ``python -m tests.contract.differential``
(starts a testbed and a simulated cluster, prints each difference, Slurm's and the gateway's:
:mod:`tests.contract.differential_gateway`). :func:`record` keeps one cluster's answers for
``tests/fixtures/slurm/differential.json``.

Two rounds: first the jobs that end by their time limit and by a failed node and one purged after MinJobAge
(:data:`FIRST_ROLES`, compared while slurmctld still holds them), then the rest (:data:`ROLES`).
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runner.ssh import SshNode
from simulator.squeue_json import dumps_json_c
from tests.polling import wait_until

SQUEUE_LETTERS = "iAjuUgGTtMlLDCcmRrNBkPSVeZaqQoE"
SQUEUE_NAMES = [
    "JobID", "Name", "UserName", "UserID", "State", "StateCompact", "TimeLimit", "NumNodes", "NumCPUs",
    "ReasonList", "Reason", "NodeList", "BatchHost", "Comment", "Partition", "WorkDir", "Account", "QOS",
    "NumTasks", "STDOUT", "STDERR", "MinMemory", "tres-alloc",
]  # fmt: skip
HOME_FIELDS = ("WorkDir", "STDOUT", "STDERR")
"""Fields that hold a home path: the simulator's homes are elsewhere, so a cut value cannot be compared."""
SACCT_NAMES = [
    "JobID", "JobIDRaw", "JobName", "Partition", "Account", "AllocCPUS", "NCPUS", "NNodes", "State", "ExitCode",
    "Start", "End", "Submit", "Elapsed", "Timelimit", "NodeList", "User", "UID", "Group", "WorkDir",
    "AllocTRES", "ReqTRES", "ReqMem", "ReqCPUS", "ReqNodes", "NTasks",
]  # fmt: skip
STATE_NAMES = [
    "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PD", "R", "CD", "CA", "TO",
    "NF", "all",
]  # fmt: skip
ECHO = "#!/bin/bash\necho hello\n"
SLEEP = "#!/bin/bash\nexec sleep 300\n"
"""``exec``: one process that slurmd's SIGTERM ends, so a cancelled batch step is ``0:15`` on every run (with
bash waiting for a child, bash sometimes reported the child's death itself: ``143:0`` FAILED)."""
SCRIPTS: dict[str, tuple[str, str]] = {
    "purged": (ECHO, ""),
    "timeout": (SLEEP, "--time=1 --nodelist=compute1"),
    "node_fail": (SLEEP, "--nodelist=compute2 --no-requeue"),
    "completed": (ECHO, ""),
    "failed": ("#!/bin/bash\nexit 3\n", ""),
    "running": (SLEEP, ""),
    "multinode": (SLEEP, "--nodes=2"),
    "held": (SLEEP, "--hold"),
    "cancelled_running": (SLEEP, ""),
    "cancelled_pending": (SLEEP, "--hold"),
    "memory": (ECHO, "--mem=100"),
    "memory_per_cpu": (SLEEP, "--hold --mem-per-cpu=50 --ntasks=2"),
}
FIRST_ROLES = ["purged", "timeout", "node_fail"]
"""Made and compared first: ended jobs that slurmctld must still hold (MinJobAge) when they are looked at, and
one it has purged; a one-minute time limit is the shortest Slurm has, so these take the real cluster a minute."""
ROLES = [
    "completed", "failed", "running", "multinode", "held", "cancelled_running", "cancelled_pending", "memory",
    "memory_per_cpu",
]  # fmt: skip
FAILED_NODE = "compute2"


@dataclass(frozen=True)
class Case:
    """One command line, with ``{role}`` placeholders for the job ids of :data:`ROLES`."""

    command: str
    stdin: str | None = None
    dump_of: tuple[str, ...] = ()
    """For a dump of every job slurmctld holds (``squeue --json``): the roles whose jobs are compared (other
    tiers' jobs, and earlier rounds' ones purged on one side only, are left out)."""


@dataclass
class Outcome:
    exit_status: int
    stdout: str
    stderr: str


async def _no_admin(node: str) -> None:
    raise NotImplementedError(f"this side cannot fail node {node}")


@dataclass
class Side:
    """One cluster as the harness drives it: the runner's account on a command node, and the jobs it made."""

    name: str
    node: SshNode | None
    """None for answers recorded earlier (:func:`recorded_side`): nothing can be run on it."""
    home: str = "/home"
    """Where users' homes are (the simulator's are in a temporary directory)."""
    jobs: dict[str, str] = field(default_factory=dict)
    fail_node: Callable[[str], Awaitable[None]] = _no_admin
    """The administrator's part: the node goes down (its jobs end NODE_FAIL) and comes back."""

    gateway: Side | None = None
    """The cluster's first gateway, as the runner's account logs in there (:mod:`differential_gateway`)."""
    answered_at: float | None = None
    """When a recording's answers were taken (epoch seconds); None: they are being taken now."""

    def answered(self) -> datetime:
        return datetime.fromtimestamp(self.answered_at) if self.answered_at is not None else datetime.now()

    async def close(self) -> None:
        if self.node is not None:
            await self.node.close()
        if self.gateway is not None:
            await self.gateway.close()

    async def run(self, command: str, stdin: str | None = None) -> Outcome:
        if self.node is None:
            raise RuntimeError(f"{self.name}: recorded answers only")
        out = await self.node.run(shlex.split(command), stdin=stdin, timeout=30)
        return Outcome(out.exit_status, out.stdout, out.stderr)


def sbatch_line(side: Side, user: str, options: str = "") -> str:
    return f"sudo -n -u {user} sbatch --parsable --chdir={side.home}/{user} --job-name=diff {options}".strip()


async def _state(side: Side, job: str) -> str:
    out = await side.run(f"sudo -n -u alice sacct -P -n -X -o State -j {job}")
    return out.stdout.strip()


async def submit(side: Side, role: str) -> str:
    script, options = SCRIPTS[role]
    out = await side.run(sbatch_line(side, "alice", options), stdin=script)
    assert out.exit_status == 0, f"{side.name}: sbatch {role}: {out.stderr}"
    side.jobs[role] = out.stdout.strip().split(";")[0]
    return side.jobs[role]


async def _wait(side: Side, role: str, prefix: str, timeout: float = 90) -> None:
    job = side.jobs[role]
    await wait_until(lambda: _has(side, job, prefix), timeout, f"{side.name} {role} {prefix}", interval=0.5)


async def _squeue_state(side: Side, job: str) -> str:
    return (await side.run(f"squeue -h -t all -o %T -j {job}")).stdout.strip()


async def produce_first_jobs(side: Side) -> None:
    """:data:`FIRST_ROLES`' jobs (``purged`` may already be submitted: it gives the simulator its first id)."""
    for role in FIRST_ROLES:
        if role not in side.jobs:
            await submit(side, role)
    await _wait(side, "timeout", "TIMEOUT", 150)  # the limit, then slurmctld's periodic time limit check
    node_fail = side.jobs["node_fail"]
    await wait_until(lambda: _running(side, node_fail), 60, f"{side.name} node_fail running", interval=0.5)
    await side.fail_node(FAILED_NODE)
    await _wait(side, "node_fail", "NODE_FAIL")
    purged = side.jobs["purged"]

    async def gone() -> bool:
        return (await side.run(f"squeue -h -j {purged}")).exit_status != 0

    await wait_until(gone, 150, f"{side.name} purged after MinJobAge", interval=1)


async def _running(side: Side, job: str) -> bool:
    return await _squeue_state(side, job) == "RUNNING"


async def produce_jobs(side: Side) -> None:
    """Jobs of each end state of :data:`ROLES`, from the same scripts on either cluster, in the same order."""
    for role in ROLES:
        await submit(side, role)
    for role in ("running", "multinode", "cancelled_running"):
        await _wait(side, role, "RUNNING")
    for role in ("cancelled_running", "cancelled_pending"):
        await side.run(f"sudo -n -u alice scancel {side.jobs[role]}")
    for role, prefix in (("completed", "COMPLETED"), ("failed", "FAILED"), ("cancelled_running", "CANCELLED")):
        await _wait(side, role, prefix)
    await _wait(side, "memory", "COMPLETED")


async def _has(side: Side, job: str, prefix: str) -> bool:
    return (await _state(side, job)).startswith(prefix)


def per_job(role: str) -> list[Case]:
    """What the runner and people ask about one job."""
    return [
        Case(f"squeue -h -t all -j {{{role}}} -o %i|%T|%N|%u|%j|%l|%D|%r"),
        Case(f"scontrol show job {{{role}}}"),
        Case(f"scontrol show job -o {{{role}}}"),
        Case(f"sudo -n -u alice sacct -P -n -X -o JobID,JobName,State,ExitCode,NodeList -j {{{role}}}"),
        Case(f"sudo -n -u alice sacct -P -n -o JobID,State,ExitCode -j {{{role}}}"),
    ]


def first_vocabulary() -> list[Case]:
    """The command lines about :data:`FIRST_ROLES`' jobs: timeout, node failure, purged after MinJobAge."""
    own = "-j {purged},{timeout},{node_fail}"
    cases = [c for role in FIRST_ROLES for c in per_job(role)]
    cases += [Case(f"squeue -h {own} -t {state} -o %i|%T|%r") for state in ("TIMEOUT", "NODE_FAIL", "TO", "NF")]
    cases += [
        Case(f"squeue -t all {own}"),
        Case(f"squeue -h -t all {own} -o %i|%T|%r|%N|%L|%M"),
        Case(f"squeue -h -t all {own} -O JobID,State,Reason,NodeList,NumTasks,tres-alloc:40"),
        Case("squeue -h -j {purged}"),
        Case("squeue -h -t all -j {purged}"),
        Case("squeue -h -t all -o %i|%T -j {purged},{timeout}"),
        Case("scontrol show job {purged}"),
        Case("sudo -n -u alice scancel {purged}"),
        Case("sudo -n -u alice scancel -v {purged}"),
        Case("sudo -n -u alice scancel -v {timeout}"),
        Case("sudo -n -u alice sacct -P -n -X -o JobID,State,ExitCode -j {purged}"),
        Case(f"sudo -n -u alice sacct -P -n -o JobID,State,ExitCode,Reason,AllocTRES {own}"),
        Case(f"sudo -n -u alice sacct {own}"),
        Case("squeue --json -j {timeout}", dump_of=tuple(FIRST_ROLES)),
    ]
    return cases


def vocabulary() -> list[Case]:
    """Every command line compared about :data:`ROLES`' jobs; generated from the field and state tables where
    possible. Home paths are compared whole only: the simulator's homes are elsewhere, so they cut differently."""
    cases: list[Case] = []
    own = "-j " + ",".join(f"{{{role}}}" for role in ROLES)
    for letter in SQUEUE_LETTERS:
        cases.append(Case(f"squeue -t all {own} -o %{letter}"))
        if letter != "Z":
            cases.append(Case(f"squeue -h -t all {own} -o %.12{letter}"))
    for name in SQUEUE_NAMES:
        if name in HOME_FIELDS:
            cases.append(Case(f"squeue -t all {own} -O {name}:"))
            continue
        cases.append(Case(f"squeue -t all {own} -O {name}"))
        cases.append(Case(f"squeue -h -t all {own} -O {name}:.9"))
    for state in STATE_NAMES:
        cases.append(Case(f"squeue -h {own} -t {state} -o %i|%T|%r"))
    cases.append(Case(f"squeue -h {own} -t bogus"))
    for role in ROLES:
        cases += per_job(role)
    three = "-j {completed},{failed},{held}"
    for name in SACCT_NAMES:
        width = "%100" if name == "WorkDir" else ""
        cases.append(Case(f"sudo -n -u alice sacct -X -o {name}{width} {three}"))
        cases.append(Case(f"sudo -n -u alice sacct -n -P -o {name} {three}"))
        if name != "WorkDir":
            cases.append(Case(f"sudo -n -u alice sacct -n -X -o {name}%5 -j {{completed}},{{failed}}"))
    memory = "-j {memory},{memory_per_cpu},{multinode},{cancelled_pending}"
    cases += [
        Case(f"sudo -n -u alice sacct -P -n -o JobID,State,AllocTRES,ReqTRES,ReqMem,ReqCPUS,ReqNodes,NTasks {memory}"),
        Case(f"sudo -n -u alice sacct -o JobID,AllocTRES,ReqTRES,ReqMem {memory}"),
        Case(f"squeue -h -t all {memory} -o %i|%m|%C|%D"),
        Case(f"squeue -h -t all {memory} -O JobID,MinMemory,tres-alloc:40,NumTasks"),
    ]
    dump = tuple(ROLES)
    cases += [
        Case("squeue --json", dump_of=dump),
        Case(f"squeue --json -h -t all -u alice {own} -o %i", dump_of=dump),
        Case("squeue --json -O NoSuchField", dump_of=dump),
        Case("squeue --json -t bogus"),
        Case("squeue --json=v0.0.38"),
    ]
    cases += [
        Case(f"squeue {own}"),
        Case(f"squeue -l {own}"),
        Case(f"squeue -h -t all {own}"),
        Case("squeue -h -j 999999"),
        Case("squeue -h -o %i|%T -j 999999,{running}"),
        Case("squeue -h -t all -o %i|%T -j {completed},{held}"),
        Case("squeue -h -u nosuchuser"),
        Case("squeue -h -O JobID:|,State:|,NodeList:|,Reason:" + f" -t all {own}"),
        Case("squeue -O NoSuchField"),
        Case("squeue --bogus-option"),
        Case("squeue -j"),
        Case("scontrol show job 999999"),
        Case("scontrol show job abc"),
        Case("scontrol show bogus"),
        Case("scontrol show"),
        Case("sudo -n -u alice sacct -P -n -X -o JobID,State -j 999999"),
        Case("sudo -n -u alice sacct -o NoSuchField -j {completed}"),
        Case("sudo -n -u alice sacct -j {completed},{failed}"),
        Case("sudo -n -u alice sacct -b -j {completed},{failed}"),
        Case("sudo -n -u alice sacct -p -n -X -o JobID,State -j {completed}"),
        Case("sudo -n -u alice scancel 999999"),
        Case("sudo -n -u alice scancel -v 999999"),
        Case("sudo -n -u alice scancel {completed}"),
        Case("sudo -n -u alice scancel -v {completed}"),
        Case("sudo -n -u bob scancel {running}"),
        Case("sudo -n -u bob scancel -v {running}"),
        Case("sudo -n -u alice scancel"),
        Case("sudo -n -u alice scancel abc"),
        Case("sudo -n -u alice scancel --bogus"),
        Case("sudo -n -u alice sbatch --parsable -p nosuch", SLEEP),
        Case("sudo -n -u alice sbatch --parsable --time=bogus", SLEEP),
        Case("sudo -n -u alice sbatch --parsable --nodes=0", SLEEP),
        Case("sudo -n -u alice sbatch --parsable --bogus", SLEEP),
        Case("sudo -n -u alice sbatch --parsable", "sleep 1\n"),
        Case("sudo -n -u alice sbatch --parsable", ""),
        Case("sudo -n -u nosuchuser sbatch --parsable", SLEEP),
        Case("sudo -n -u root sbatch --parsable", SLEEP),
        Case("id alice"),
        Case("id bob"),
        Case("id nosuchuser"),
        Case("id root"),
        Case("id slurm"),
        Case("getent passwd alice"),
        Case("getent passwd nosuchuser"),
        Case("getent passwd root"),
    ]
    return cases


FAR = timedelta(days=300)
"""A date this far ahead of the answer is backfill's year for a job without a limit."""


def _no_end(match: re.Match[str], answered: datetime) -> str:
    """Backfill's year as the main scheduler's no end: ``Unknown``/``NONE``."""
    if datetime.fromisoformat(match.group(2)) < answered + FAR:
        return match.group(0)
    return "EndTime=Unknown" if match.group(1) else "NONE"


_MASKS: list[tuple[re.Pattern[str], str | Callable[..., str]]] = [
    # A job without a limit shows UNLIMITED, or one year where backfill started it (backfill.c's YEAR_MINUTES):
    # which scheduler starts a job is the real cluster's timing, so both read the same (also cut by sacct's %N)
    (re.compile(r"\b365-00:00:00\b|\bUNLIMITED\b"), "<unlimited>"),
    (re.compile(r"(?<!\S)(365-\+|UNLI\+)"), "<unlimited+>"),
    (re.compile(r"\b365-00:00\+"), "<unlimited>"),  # sacct's width 10 cuts a year, not UNLIMITED
    (re.compile(r"\b364-\d\d:\d\d:\d\d\b"), "<unlimited>"),  # time left of such a year, minutes into it
    (re.compile(r"Scheduler=(Main|Backfill)"), "Scheduler=<which>"),
    # that year's end (scontrol's EndTime, squeue's %e, cut or not): what the main scheduler shows for no end
    (re.compile(r"(EndTime=)?(\d{4}-\d\d-\d\d)(T[\d:]*)?"), _no_end),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"), "YYYY-MM-DDThh:mm:ss"),
    (re.compile(r"\b(\d+-)?(\d+:)?\d+:\d\d\b"), "<dur>"),
    (re.compile(r"AllocNode:Sid=(\S+):\d+"), r"AllocNode:Sid=\1:<sid>"),
    (re.compile(r"\bbwvisu-[0-9a-f]+-(?=command|compute)"), ""),  # the testbed's per-session container names
    (re.compile(r"Priority=\d+"), "Priority=<p>"),
    (re.compile(r"\b42949\d{5}\b"), "<priority>"),
]


EPOCH_KEYS = frozenset(
    {"accrue_time", "eligible_time", "end_time", "last_sched_evaluation", "start_time", "submit_time"}
)
YEAR_MINUTES = 525600
"""backfill's time limit of a job without one (a year); the main scheduler leaves none (NO_VAL: ``null``)."""


def _masked_dump(value: object, answered: datetime) -> object:
    """A job dump's epochs as ``<time>`` (0 stays: none), a backfill year's end and limit as the main scheduler's,
    the sockets a job got on a node numbered from 0 (which CPUs are free is the real cluster's other jobs)."""
    if isinstance(value, list):
        return [_masked_dump(v, answered) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, item in value.items():
        if key in EPOCH_KEYS and isinstance(item, int) and item:
            far = key == "end_time" and item > (answered + FAR).timestamp()
            out[key] = 0 if far else "<time>"
        elif key == "time_limit" and item == YEAR_MINUTES:
            out[key] = None
        elif key == "sockets" and isinstance(item, dict):
            out[key] = {str(i): _masked_dump(v, answered) for i, v in enumerate(item.values())}
        else:
            out[key] = _masked_dump(item, answered)
    return out


def normalise_dump(text: str, side: Side, roles: tuple[str, ...]) -> str:
    """A ``--json`` dump as the lines to compare: whether json-c laid it out, then the jobs of ``roles`` only,
    in slurmctld's order, with times masked."""
    try:
        dump = json.loads(text)
    except ValueError:
        return text
    layout = "json-c layout" if dumps_json_c(dump) == text else "not json-c's layout"
    ids = {side.jobs[r] for r in roles if r in side.jobs}
    dump["jobs"] = [job for job in dump["jobs"] if str(job.get("job_id")) in ids]
    return layout + "\n" + json.dumps(_masked_dump(dump, side.answered()), indent=1)


def normalise(text: str, side: Side, dump_of: tuple[str, ...] = ()) -> list[str]:
    """``text``'s lines with job ids replaced by their role, times masked, whitespace runs collapsed."""
    by_id = {job_id: role for role, job_id in side.jobs.items()}
    if dump_of:
        text = normalise_dump(text, side, dump_of)
    text = text.replace(side.home + "/", "/home/").replace(side.home + '"', '/home"')

    def job(match: re.Match[str]) -> str:
        return f"<{by_id[match.group(0)]}>" if match.group(0) in by_id else match.group(0)

    lines = []
    for raw in text.splitlines():
        masked = raw
        for pattern, repl in _MASKS:
            if repl is _no_end:
                masked = pattern.sub(lambda m: _no_end(m, side.answered()), masked)
            else:
                masked = pattern.sub(repl, masked)
        masked = re.sub(r"(?<![\d.])\d+(?![\d.])", job, masked)
        lines.append(" ".join(masked.split()) if masked.strip() else masked)
    return lines


@dataclass
class Difference:
    command: str
    what: str
    real: object
    sim: object

    def __str__(self) -> str:
        return f"{self.command}\n  {self.what}:\n    real: {self.real!r}\n    sim:  {self.sim!r}"


def compare(case: Case, real: Outcome, real_side: Side, sim: Outcome, sim_side: Side) -> list[Difference]:
    command = case.command
    diffs: list[Difference] = []
    if real.exit_status != sim.exit_status:
        diffs.append(Difference(command, "exit status", real.exit_status, sim.exit_status))
    for stream in ("stdout", "stderr"):
        a = normalise(getattr(real, stream), real_side, case.dump_of if stream == "stdout" else ())
        b = normalise(getattr(sim, stream), sim_side, case.dump_of if stream == "stdout" else ())
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            diffs.append(Difference(command, f"{stream} line {first + 1}", a[first : first + 2], b[first : first + 2]))
    return diffs


async def run_all(real: Side, sim: Side, cases: list[Case]) -> list[Difference]:
    """Every case on both sides, read-only queries concurrently over each side's one connection."""

    async def one(case: Case) -> list[Difference]:
        a, b = await asyncio.gather(
            real.run(case.command.format(home=real.home, **real.jobs), case.stdin),
            sim.run(case.command.format(home=sim.home, **sim.jobs), case.stdin),
        )
        return compare(case, a, real, b, sim)

    results = await asyncio.gather(*(one(c) for c in cases))
    return [d for r in results for d in r]


async def outcomes(side: Side, cases: list[Case]) -> list[Outcome]:
    """Every case on one side, concurrently over its one connection."""
    return list(
        await asyncio.gather(*(side.run(c.command.format(home=side.home, **side.jobs), c.stdin) for c in cases))
    )


def compare_outcomes(
    cases: list[Case], real: Side, real_out: list[Outcome], sim: Side, sim_out: list[Outcome]
) -> list[Difference]:
    """The differences of answers collected at different times (:func:`outcomes` on each side)."""
    return [d for c, a, b in zip(cases, real_out, sim_out, strict=True) for d in compare(c, a, real, b, sim)]


KNOWN = Path(__file__).with_name("differential_known.txt")
MAYBE = "~ "


def known_differences(text: str) -> tuple[set[str], set[str]]:
    """``(every listed command line, the ones that must still differ)`` of ``differential_known.txt``."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {line.removeprefix(MAYBE) for line in lines}, {line for line in lines if not line.startswith(MAYBE)}


RECORDING_VERSION = 1


async def record(side: Side) -> dict[str, Any]:
    """Both rounds on one cluster, every answer kept: what ``python -m containers.capture_fixtures`` writes to
    ``tests/fixtures/slurm/differential.json``, so the simulator is compared with real answers without Docker."""
    if FIRST_ROLES[0] not in side.jobs:
        await submit(side, FIRST_ROLES[0])
    await produce_first_jobs(side)
    cases = first_vocabulary()
    answered_at = time.time()
    answers = await outcomes(side, cases)
    await produce_jobs(side)
    cases += vocabulary()
    answers += await outcomes(side, vocabulary())
    return {
        "version": RECORDING_VERSION,
        "answered_at": answered_at,
        "jobs": side.jobs,
        "home": side.home,
        "answers": [{"command": c.command, "stdin": c.stdin, **vars(a)} for c, a in zip(cases, answers, strict=True)],
    }


def recorded_side(recording: dict[str, Any]) -> tuple[Side, dict[tuple[str, str | None], Outcome]]:
    """A recording's cluster (its job ids and homes) and its answers by command line and stdin."""
    side = Side("real", None, recording["home"], jobs=dict(recording["jobs"]), answered_at=recording["answered_at"])
    answers = {
        (a["command"], a["stdin"]): Outcome(a["exit_status"], a["stdout"], a["stderr"]) for a in recording["answers"]
    }
    return side, answers


def main() -> int:
    from tests.contract.differential_clusters import both_sides, differences_on  # noqa: PLC0415 - starts Docker
    from tests.contract.differential_gateway import gateway_command_lines  # noqa: PLC0415 - imports this module

    async def go() -> int:
        async with both_sides() as real:
            diffs = await differences_on(real)
        for d in diffs:
            print(d)
        gateway = len(gateway_command_lines())
        print(f"{len(all_command_lines())} Slurm and {gateway} gateway command lines, {len(diffs)} differences")
        return 1 if diffs else 0

    return asyncio.run(go())


def all_command_lines() -> set[str]:
    return {c.command for c in first_vocabulary() + vocabulary()}


if __name__ == "__main__":
    sys.exit(main())
