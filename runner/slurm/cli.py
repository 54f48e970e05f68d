"""Slurm's command line, as argument lists in and parsed records out: pure functions, no I/O.

Builders return argv lists for :class:`runner.ssh.CommandRunner`; parsers read the exact text Slurm 22.05
prints for the formats requested here. Everything the runner learns about jobs flows through these.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from runner.errors import SlurmParseError
from runner.records import JobState

JOB_NAME_PREFIX = "bwvisu-"

# squeue fields the watcher asks for, in order; '|' cannot occur in any of them for runner jobs.
SQUEUE_FIELDS: tuple[tuple[str, str], ...] = (
    ("%i", "slurm-job-id"),
    ("%T", "slurm-state"),
    ("%r", "reason"),
    ("%j", "job-name"),
    ("%u", "user"),
    ("%P", "partition"),
    ("%D", "nodes"),
    ("%N", "node-list"),
    ("%l", "time-limit"),
    ("%V", "submit-time"),
    ("%S", "start-time"),
)
SQUEUE_FORMAT = "|".join(code for code, _ in SQUEUE_FIELDS)
SACCT_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Start", "End", "Elapsed", "NodeList")

# Slurm's own texts for "that job id is not in the controller's memory" and "no controller answered".
_INVALID_JOB_ID = "Invalid job id specified"
_CONTROLLER_DOWN = ("Unable to contact slurm controller", "Socket timed out on send/recv operation")

_RUNNING = {"RUNNING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING", "STAGE_OUT"}
_ENDED = {
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
    "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED",
}  # fmt: skip


def job_name(runner_job_id: str) -> str:
    """The Slurm job name that ties a Slurm job to its runner job (found again after an ambiguous submit)."""
    return f"{JOB_NAME_PREFIX}{runner_job_id}"


def as_user(uid: str, argv: list[str], helper: str | None = None) -> list[str]:
    """Run ``argv`` as ``uid``: bwVisu's ``sudo -n -u UID ...``, or ``sudo -n HELPER UID ...`` through a site's helper.

    The helper (``command-node-helper``, e.g. ``bwvisu-slurm-as`` from ``bwvisu_site/command``) runs the Slurm
    command as ``uid`` only if that is an ordinary user, which a sudoers rule cannot express.
    """
    if helper is None:
        return ["sudo", "-n", "-u", uid, *argv]
    return ["sudo", "-n", helper, uid, *argv]


def sbatch_argv(uid: str, runner_job_id: str, workdir: str, helper: str | None = None) -> list[str]:
    """``sbatch`` reading the script from stdin, running in ``workdir`` with bwVisu's log name."""
    name = job_name(runner_job_id)
    return as_user(
        uid,
        [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--comment={name}",
            f"--chdir={workdir}",
            f"--output={workdir}/bwvisu-job-%j.out",
        ],
        helper,
    )


def parse_sbatch(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``<id>`` or ``<id>;<cluster>``)."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = line.split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmParseError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
    return job_id


def squeue_argv(slurm_ids: list[str]) -> list[str]:
    """One ``squeue`` for all ``slurm_ids``, including jobs that just ended (``-t all``)."""
    return ["squeue", "-h", "-t", "all", "-j", ",".join(slurm_ids), "-o", SQUEUE_FORMAT]


def squeue_by_name_argv(names: list[str]) -> list[str]:
    return ["squeue", "-h", "-t", "all", "-n", ",".join(names), "-o", SQUEUE_FORMAT]


def squeue_missing_ids(exit_status: int, stderr: str) -> bool:
    """squeue exits 1 with "Invalid job id specified" when none of the ids is known: an answer, not a failure."""
    return exit_status == 1 and _INVALID_JOB_ID in stderr


def _split_rows(stdout: str, fields: int, command: str) -> Iterator[list[str]]:
    """The ``|``-separated values of each non-blank line; SlurmParseError for a line with another field count."""
    for line in stdout.splitlines():
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) != fields:
            raise SlurmParseError(f"{command} line has {len(values)} fields, expected {fields}: {line!r}")
        yield values


_SQUEUE_KEYS = tuple(key for _, key in SQUEUE_FIELDS)
_SPACE = re.compile(r"\s")


def parse_squeue(stdout: str) -> dict[str, dict[str, str]]:
    """Rows of :data:`SQUEUE_FORMAT` keyed by Slurm job id (a watcher tick parses one row per active job)."""
    jobs: dict[str, dict[str, str]] = {}
    keys = _SQUEUE_KEYS
    for line in stdout.splitlines():
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) != len(keys):
            raise SlurmParseError(f"squeue line has {len(values)} fields, expected {len(keys)}: {line!r}")
        if _SPACE.search(line):  # most lines have no space at all, and this runs per job per tick
            values = [value.strip() for value in values]
        row = dict(zip(keys, values, strict=True))
        jobs[row["slurm-job-id"]] = row
    return jobs


def sacct_argv(slurm_ids: list[str]) -> list[str]:
    return ["sacct", "-n", "-P", "-X", "-j", ",".join(slurm_ids), "-o", ",".join(SACCT_FIELDS)]


def parse_sacct(stdout: str) -> dict[str, dict[str, str]]:
    """``sacct -P -n -X`` rows keyed by job id; ``State`` is cut to its first word (``CANCELLED by 1000``)."""
    rows: dict[str, dict[str, str]] = {}
    for values in _split_rows(stdout, len(SACCT_FIELDS), "sacct"):
        raw = dict(zip(SACCT_FIELDS, values, strict=True))
        state_words = raw["State"].split()
        rows[raw["JobID"]] = {
            "slurm-job-id": raw["JobID"],
            "slurm-state": state_words[0] if state_words else "UNKNOWN",
            "end-reason": raw["State"],
            "exit-code": raw["ExitCode"],
            "start-time": raw["Start"],
            "end-time": raw["End"],
            "elapsed": raw["Elapsed"],
            "node-list": raw["NodeList"],
            "job-name": raw["JobName"],
        }
    return rows


def scancel_argv(uid: str, slurm_id: str, helper: str | None = None) -> list[str]:
    # Without --verbose, Slurm 22.05's scancel of an unknown job prints nothing and exits 0.
    return as_user(uid, ["scancel", "--verbose", slurm_id], helper)


def scancel_unknown_job(stderr: str) -> bool:
    """scancel says the job is not (or no longer) known; its exit status is 0 for this case."""
    return _INVALID_JOB_ID in stderr


def controller_unreachable(stderr: str) -> bool:
    """Slurm's client could not talk to slurmctld (down, or not answering in time)."""
    return any(text in stderr for text in _CONTROLLER_DOWN)


def getent_argv(username: str) -> list[str]:
    """``getent passwd NAME``: the account as the command node's NSS sees it (files, LDAP, SSSD alike)."""
    return ["getent", "passwd", username]


@dataclass(frozen=True)
class Account:
    """One passwd entry of the cluster."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


_DECIMAL = re.compile(r"[0-9]{1,10}")


def parse_getent_passwd(stdout: str, name: str) -> Account | None:
    """The entry ``getent passwd NAME`` printed for ``name``; None when it printed nothing (no such key).

    Anything but one well-formed ``name:password:uid:gid:gecos:home:shell`` line for ``name`` itself is a
    :class:`SlurmParseError`: a uid the runner cannot read must never pass for an ordinary one.
    """
    lines = stdout.splitlines()
    if not any(lines):
        return None
    if len(lines) != 1:
        raise SlurmParseError(f"getent passwd {name} printed {len(lines)} lines, expected one")
    fields = lines[0].split(":")
    if len(fields) != 7:
        raise SlurmParseError(f"getent passwd {name}: {len(fields)} fields, expected 7: {lines[0][:200]!r}")
    entry, _password, uid, gid, _gecos, home, shell = fields
    if entry != name:
        raise SlurmParseError(f"getent passwd {name} answered for {entry[:64]!r}")
    if not (_DECIMAL.fullmatch(uid) and _DECIMAL.fullmatch(gid)):
        raise SlurmParseError(f"getent passwd {name}: uid/gid not decimal: {uid[:20]!r}/{gid[:20]!r}")
    return Account(name, int(uid), int(gid), home, shell)


@functools.lru_cache(maxsize=256)  # a few dozen states exist; asked per job per tick
def bwvisu_state(slurm_state: str) -> JobState:
    """Map a Slurm state (``%T`` or sacct's first word) to bwVisu's; unknown states count as queued."""
    state = slurm_state.upper().rstrip("+")
    if state in _RUNNING:
        return JobState.RUNNING
    if state == "COMPLETING":
        return JobState.COMPLETING
    if state in _ENDED:
        return JobState.FINISHED
    return JobState.SUBMITTED


@dataclass(frozen=True)
class SlurmErrorText:
    """The interesting line of Slurm's error output, for messages and logs."""

    text: str

    @classmethod
    def from_stderr(cls, stderr: str) -> SlurmErrorText:
        lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        text = (errors or lines or ["no error text"])[-1]
        return cls(re.sub(r"\s+", " ", text)[:500])
