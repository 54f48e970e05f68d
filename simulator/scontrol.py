"""``scontrol show job``/``ping`` and ``scancel``, with Slurm 22.05's texts and exit statuses.

scancel's exit status is its worst Slurm error number modulo 256, as real ``scancel`` exits with the errno:
Access/permission denied (2002) is 210, a controller that cannot be reached (1800) is 8. A job that is
unknown or already ended is no error when it is being killed (the default signal): nothing is printed and
the status is 0 unless ``-v``/``--verbose`` asks to see the message.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field

from simulator.commands import CommandContext, CommandResult
from simulator.hostlist import compress
from simulator.jobs import Job, JobState
from simulator.scheduler import ACCESS_DENIED, ALREADY_DONE, INVALID_JOB_ID, SlurmError
from simulator.slurmctl import CONNECT_FAILURE, slurm, uid_of
from simulator.slurmtime import clock_limit, clock_secs, timestamp


def show_job(job: Job, users: dict[int, str], now: float) -> list[str]:
    """The lines of ``scontrol show job`` for one job (22.05 layout, without the trailing blank line)."""
    user = users.get(job.spec.uid, str(job.spec.uid))
    group = users.get(job.spec.gid, str(job.spec.gid))
    nodelist = compress(job.nodes)
    end = job.expected_end
    restarts_state = job.display_state
    # slurmctld keeps the signal that ended the batch script (scancel's or the time limit's SIGTERM); sacct's job
    # line does not
    killed = job.state in (JobState.CANCELLED, JobState.TIMEOUT) and job.nodes
    signal_shown = job.batch_signal if killed else job.exit_signal
    eligible = "Unknown" if job.spec.hold else timestamp(job.submit_time)
    min_cpus = (job.spec.ntasks_per_node or 1) * job.spec.cpus_per_task  # per node, as asked: pn_min_cpus
    lines = [
        f"JobId={job.job_id} JobName={job.name}",
        f"   UserId={user}({job.spec.uid}) GroupId={group}({job.spec.gid}) MCS_label=N/A",
        f"   Priority={job.priority} Nice=0 Account={job.spec.account or '(null)'} QOS=normal",
        f"   JobState={restarts_state} Reason={job.reason} Dependency=(null)",
        f"   Requeue={int(job.spec.requeue)} Restarts=0 BatchFlag=1 Reboot=0 ExitCode={job.exit_code}:{signal_shown}",
        f"   RunTime={clock_secs(job.elapsed(now))} TimeLimit={clock_limit(job.time_limit)} TimeMin=N/A",
        f"   SubmitTime={timestamp(job.submit_time)} EligibleTime={eligible}",
        f"   AccrueTime={eligible}",
        f"   StartTime={timestamp(job.start_time)} EndTime={timestamp(end)} Deadline=N/A",
        f"   SuspendTime=None SecsPreSuspend=0 LastSchedEval={timestamp(job.start_time or job.submit_time)}"
        " Scheduler=Main",
        f"   Partition={job.partition} AllocNode:Sid={job.spec.submit_host}:1",
        f"   ReqNodeList={compress(job.spec.req_nodes) if job.spec.req_nodes else '(null)'} ExcNodeList=(null)",
        f"   NodeList={nodelist}",
    ]
    if job.nodes:
        lines.append(f"   BatchHost={job.nodes[0]}")
    lines += [
        f"   NumNodes={job.num_nodes} NumCPUs={job.num_cpus} NumTasks={'N/A' if job.never_started else job.num_tasks}"
        f" CPUs/Task={job.spec.cpus_per_task} ReqB:S:C:T=0:0:*:*",
        f"   TRES={job.tres()}",
        f"   Socks/Node=* NtasksPerN:B:S:C={job.spec.ntasks_per_node or 0}:0:*:* CoreSpec=*",
        f"   MinCPUsNode={min_cpus} {_min_memory(job)} MinTmpDiskNode=0",
        "   Features=(null) DelayBoot=00:00:00",
        "   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)",
        "   Command=(null)",
        f"   WorkDir={job.spec.work_dir}",
    ]
    if job.spec.comment is not None:
        lines.append(f"   Comment={job.spec.comment} ")
    lines += [f"   StdErr={job.stderr}", "   StdIn=/dev/null", f"   StdOut={job.stdout}", "   Power=", "   "]
    return lines


def _min_memory(job: Job) -> str:
    if job.spec.mem_per_cpu_mb is not None:
        return f"MinMemoryCPU={job.spec.mem_per_cpu_mb}M"
    return f"MinMemoryNode={job.min_memory}"


async def scontrol(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:  # noqa: PLR0911 - one return per answer
    service = slurm(ctx)
    args = [a for a in argv[1:] if a not in ("-o", "--oneliner", "-d", "--details")]
    oneliner = "-o" in argv or "--oneliner" in argv
    if args == ["ping"]:
        state = "UP" if service.controller_up else "DOWN"
        return CommandResult(
            0 if service.controller_up else 1, f"Slurmctld(primary) at {service.controller_name} is {state}\n"
        )
    if args == ["show"]:
        return CommandResult(1, "", "too few arguments for keyword:show\n")
    if len(args) < 2 or args[0] != "show" or args[1] not in ("job", "jobs", "jobid"):
        return CommandResult(1, "", f"invalid entity:{' '.join(args[1:2])} for keyword:{' '.join(args[:1])}\n")
    if not service.controller_up:
        return CommandResult(1, "", f"slurm_load_jobs error: {CONNECT_FAILURE}\n")
    sched = service.scheduler
    if len(args) > 2:
        job_id = args[2].split("=")[-1]
        if not job_id.isdigit():  # scontrol rejects it before asking slurmctld
            return CommandResult(1, "", "scontrol_print_job error: Invalid job id specified\n")
        job = sched.jobs.get(int(job_id))
        if job is None or job.purged:
            return CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified\n")
        jobs = [job]
    else:
        jobs = sched.visible_jobs()
        if not jobs:
            return CommandResult(0, "No jobs in the system\n")
    names = {a.uid: a.name for a in service.users.all()}
    now = time.time()
    out: list[str] = []
    for job in jobs:
        lines = show_job(job, names, now)
        if oneliner:
            out.append(" ".join(line.lstrip() for line in lines) + "\n")
        else:
            out.append("\n".join(lines) + "\n\n")
    return CommandResult(0, "".join(out))


_SIGNALS = {
    "TERM": signal.SIGTERM,
    "KILL": signal.SIGKILL,
    "INT": signal.SIGINT,
    "HUP": signal.SIGHUP,
    "USR1": signal.SIGUSR1,
    "USR2": signal.SIGUSR2,
    "CONT": signal.SIGCONT,
    "STOP": signal.SIGSTOP,
}


@dataclass
class _CancelRequest:
    ids: list[str] = field(default_factory=list)
    signum: int | None = None
    user: str | None = None
    name: str | None = None
    state: str | None = None
    verbose: bool = False


def _parse_scancel(argv: list[str]) -> _CancelRequest | CommandResult:
    req = _CancelRequest()
    args = iter(argv[1:])
    for arg in args:
        key, _, value = arg.partition("=")
        if key in ("-s", "--signal"):
            text = (value or next(args, "")).upper().removeprefix("SIG")
            req.signum = int(text) if text.isdigit() else _SIGNALS.get(text)
            if req.signum is None:
                return CommandResult(1, "", f"scancel: error: Invalid job signal: {text}\n")
        elif key in ("-u", "--user"):
            req.user = value or next(args, "")
        elif key in ("-n", "--name", "--jobname"):
            req.name = value or next(args, "")
        elif key in ("-t", "--state"):
            req.state = _STATE_ALIASES.get((value or next(args, "")).upper())
        elif key in ("-v", "--verbose") or re.fullmatch(r"-v+", arg):
            req.verbose = True
        elif key in ("-b", "--batch", "-f", "--full", "-Q", "--quiet"):
            continue
        elif arg.startswith("-"):
            return CommandResult(
                1, "", f"scancel: unrecognized option '{arg}'\nTry \"scancel --help\" for more information\n"
            )
        else:
            req.ids += [i for i in arg.split(",") if i]
    return req


_STATE_ALIASES = {"PD": "PENDING", "PENDING": "PENDING", "R": "RUNNING", "RUNNING": "RUNNING"}


async def scancel(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """``scancel [-s SIG] [-u USER] [-n NAME] [-t STATE] [JOBID...]``."""
    service = slurm(ctx)
    req = _parse_scancel(argv)
    if isinstance(req, CommandResult):
        return req
    sched = service.scheduler
    targets: list[int] = []
    for raw in req.ids:
        if not raw.split(".")[0].isdigit():
            return CommandResult(1, "", f"scancel: error: Invalid job id {raw}\n")
        targets.append(int(raw.split(".")[0]))
    if not req.ids:
        if req.user is None and req.name is None and req.state is None:
            return CommandResult(1, "", "scancel: error: No job identification provided\n")
        targets = [
            j.job_id
            for j in sched.visible_jobs()
            if j.active
            and (req.user is None or j.user == req.user)
            and (req.name is None or j.name == req.name)
            and (req.state is None or j.state.value == req.state)
        ]
    messages: list[str] = []
    status = 0
    uid = uid_of(ctx)
    for job_id in targets:
        if req.verbose:
            what = "Terminating job" if req.signum is None else f"Signal {req.signum} to job"
            messages.append(f"scancel: {what} {job_id}\n")
        if not service.controller_up:
            error = CONNECT_FAILURE
        else:
            try:
                sched.cancel(job_id, uid, ctx.user, req.signum)
                continue
            except SlurmError as exc:
                error = exc.message
        quiet = error in _GONE
        if req.verbose or not quiet:
            messages.append(f"scancel: error: Kill job error on job id {job_id}: {error}\n")
        if not (quiet and req.signum is None):  # a job already gone counts as killed
            status = max(status, _ERRNO.get(error, 1))
    return CommandResult(status % 256, "", "".join(messages))


# Slurm's error numbers for the texts above (slurm_errno.h); scancel exits with the largest modulo 256.
_ERRNO = {CONNECT_FAILURE: 1800, ACCESS_DENIED: 2002, INVALID_JOB_ID: 2017, ALREADY_DONE: 2021}
_GONE = (INVALID_JOB_ID, ALREADY_DONE)
