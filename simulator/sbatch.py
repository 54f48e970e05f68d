"""``sbatch``: the batch script on stdin (or a file, or ``--wrap``), ``#SBATCH`` directives, Slurm's texts.

Options are parsed the same way from ``#SBATCH`` lines (up to the first command line of the script)
and from the command line, the command line winning, as in Slurm's ``opt.c``.
"""

from __future__ import annotations

import argparse
import functools
import shlex
from pathlib import Path

from simulator.cliparse import Parser, UsageError
from simulator.commands import CommandContext, CommandResult
from simulator.hostlist import expand
from simulator.jobs import JobSpec
from simulator.scheduler import INVALID_PARTITION, SlurmError
from simulator.slurmctl import CONNECT_FAILURE, slurm
from simulator.slurmtime import TimeFormatError, parse_time_limit
from simulator.users import Account


@functools.cache  # built once: argparse parsers are reusable and slow to build
def _parser() -> Parser:
    p = Parser(prog="sbatch", add_help=False, allow_abbrev=False)
    p.add_argument("-N", "--nodes")
    p.add_argument("-n", "--ntasks", type=int)
    p.add_argument("--ntasks-per-node", type=int)
    p.add_argument("-c", "--cpus-per-task", type=int)
    p.add_argument("-t", "--time")
    p.add_argument("-J", "--job-name")
    p.add_argument("--comment")
    p.add_argument("-D", "--chdir")
    p.add_argument("-o", "--output")
    p.add_argument("-e", "--error")
    p.add_argument("-p", "--partition")
    p.add_argument("-A", "--account")
    p.add_argument("-q", "--qos")
    p.add_argument("--mem")
    p.add_argument("--mem-per-cpu")
    p.add_argument("--export")
    p.add_argument("--gres")
    p.add_argument("--wrap")
    p.add_argument("--exclusive", action="store_true")
    p.add_argument("-w", "--nodelist")
    p.add_argument("--no-requeue", action="store_true")
    p.add_argument("--requeue", action="store_true")
    p.add_argument("-H", "--hold", action="store_true")
    p.add_argument("--parsable", action="store_true")
    p.add_argument("-Q", "--quiet", action="store_true")
    p.add_argument("script", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def needs_stdin(argv: list[str]) -> bool:
    """Whether this sbatch call reads its script from stdin (no script file, no ``--wrap``)."""
    try:
        opts = _parser().parse_args(argv[1:])
    except UsageError:
        return False
    return opts.script is None and opts.wrap is None


def _error(*lines: str) -> CommandResult:
    return CommandResult(1, "", "".join(f"sbatch: error: {line}\n" for line in lines))


def directives(script: str) -> list[str]:
    """The words of every ``#SBATCH`` line before the first command, as Slurm reads them."""
    words: list[str] = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            words += shlex.split(stripped[len("#SBATCH") :], comments=True)
    return words


async def sbatch(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    service = slurm(ctx)
    parsed = _parse(ctx, argv, stdin)
    if isinstance(parsed, CommandResult):
        return parsed
    spec, parsable, quiet = parsed
    if not service.controller_up:
        return _error(f"Batch job submission failed: {CONNECT_FAILURE}")
    try:
        job = service.scheduler.submit(spec)
    except SlurmError as exc:
        lines = [f"Batch job submission failed: {exc.message}"]
        if exc.message == INVALID_PARTITION:  # 22.05 names the partition first
            lines.insert(0, f"invalid partition specified: {spec.partition}")
        return _error(*lines)
    if parsable:
        suffix = f";{service.cluster_name}" if service.parsable_with_cluster else ""
        return CommandResult(0, f"{job.job_id}{suffix}\n")
    if quiet:
        return CommandResult(0)
    return CommandResult(0, f"Submitted batch job {job.job_id}\n")


def _script(cli: argparse.Namespace, stdin: bytes) -> str | CommandResult:
    if cli.wrap is not None:
        return f"#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{cli.wrap}\n"
    if cli.script is not None:
        try:
            return Path(cli.script).read_text()
        except OSError:
            return _error(f"Unable to open file {cli.script}")
    return stdin.decode(errors="replace")


def _parse(  # noqa: PLR0911 - one return per error sbatch reports
    ctx: CommandContext, argv: list[str], stdin: bytes
) -> tuple[JobSpec, bool, bool] | CommandResult:
    """Options, script and directives -> a job spec (or the error sbatch prints before contacting slurmctld)."""
    parser = _parser()
    try:
        cli = parser.parse_args(argv[1:])
    except UsageError as exc:
        # an unknown option is getopt's complaint and sbatch exits 255 (exit(error_exit) in its option parsing)
        return CommandResult(255, "", f'sbatch: {exc}\nTry "sbatch --help" for more information\n')
    script = _script(cli, stdin)
    if isinstance(script, CommandResult):
        return script
    if not script:
        return _error("Batch script is empty!")
    if not script.startswith("#!"):
        return _error(
            "This does not look like a batch script.  The first",
            "line must start with #! followed by the path to an interpreter.",
            "For instance: #!/bin/sh",
        )
    try:
        from_script = parser.parse_args(directives(script))
    except UsageError as exc:
        return CommandResult(1, "", f"sbatch: {exc}\n")
    merged = {k: v for k, v in vars(from_script).items() if v not in (None, False)}
    merged.update({k: v for k, v in vars(cli).items() if v not in (None, False)})
    account = slurm(ctx).users.get(ctx.user)
    if account is None or account.uid == 0:  # slurmctld refuses batch jobs of root (ESLURM_USER_ID_MISSING)
        return _error("Batch job submission failed: Invalid user id")
    try:
        spec = _spec(merged, script, account, ctx.node.name)
    except TimeFormatError:
        # sbatch rejects the option while parsing it and exits 255 (fatal()), not 1 like later errors
        return CommandResult(255, "", "sbatch: error: Invalid --time specification\n")
    except ValueError as exc:
        return _error(str(exc))
    return spec, bool(cli.parsable), bool(cli.quiet)


def _spec(opts: dict[str, object], script: str, account: Account, host: str) -> JobSpec:
    nodes_text = str(opts.get("nodes", "1"))
    try:
        nodes = int(nodes_text.partition("-")[0])
    except ValueError:
        raise ValueError(f"Invalid node count specification: {nodes_text}") from None
    if nodes < 1:  # sbatch passes 0 on and slurmctld rejects it
        raise ValueError("Batch job submission failed: Node count specification invalid")
    home = account.home
    spec = JobSpec(
        script=script, user=account.name, uid=account.uid, gid=account.gid, nodes=nodes, submit_host=host, work_dir=home
    )
    spec.partition = _str(opts.get("partition"))
    spec.name = _str(opts.get("job_name")) or "sbatch"
    spec.ntasks = _int(opts.get("ntasks"))
    spec.ntasks_per_node = _int(opts.get("ntasks_per_node"))
    spec.cpus_per_task = _int(opts.get("cpus_per_task")) or 1
    if "time" in opts:
        spec.time_limit = parse_time_limit(str(opts["time"]))
        spec.time_limit_given = True
    spec.comment = _str(opts.get("comment"))
    chdir = _str(opts.get("chdir"))
    if chdir is not None:
        spec.work_dir = chdir if chdir.startswith("/") else f"{home}/{chdir}"
    spec.stdout = _str(opts.get("output"))
    spec.stderr = _str(opts.get("error"))
    spec.account = _str(opts.get("account"))
    spec.hold = bool(opts.get("hold"))
    if opts.get("nodelist"):
        spec.req_nodes = expand(str(opts["nodelist"]))
    spec.requeue = not opts.get("no_requeue")
    if opts.get("mem") is not None:
        spec.mem_per_node_mb = parse_memory(str(opts["mem"]))
    if opts.get("mem_per_cpu") is not None:
        spec.mem_per_cpu_mb = parse_memory(str(opts["mem_per_cpu"]))
    return spec


_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def parse_memory(text: str) -> int:
    """``--mem``/``--mem-per-cpu``: a number of MB, or with a K, M, G or T suffix (Slurm's ``str_to_mbytes``)."""
    number, unit = (text[:-1], text[-1].upper()) if text[-1:].isalpha() else (text, "M")
    if not number.isdigit() or unit not in _UNITS:
        raise ValueError("invalid memory constraint " + text)
    return max(int(int(number) * _UNITS[unit]), 0)


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))
