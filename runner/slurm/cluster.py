"""The cluster's command nodes, with failover, and the Slurm operations the runner needs from them.

:class:`CommandNodes` runs a command on the first reachable command node; a node that cannot be reached is
skipped until ``down_retry_after`` seconds have passed. :class:`SlurmCluster` implements the
:class:`Scheduler` protocol on top of it; the orchestration in :mod:`runner.jobs` and :mod:`runner.watcher`
talks only to that protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from runner.errors import (
    ClusterUnavailable,
    CommandIndeterminate,
    NodeUnreachable,
    SchedulerError,
    SchedulerUnavailable,
    SlurmParseError,
    SubmissionIndeterminate,
)
from runner.slurm import cli as slurm
from runner.ssh import CommandOutput, CommandRunner

log = logging.getLogger(__name__)

# One squeue/sacct argument must stay below Linux's 128 KiB per-argument limit; ids are joined with commas.
MAX_ID_LIST_CHARS = 100_000

Rows = TypeVar("Rows")


class Scheduler(Protocol):
    """What the runner asks of Slurm."""

    async def submit(self, uid: str, runner_job_id: str, workdir: str, script: str) -> str: ...

    async def find_by_names(self, names: list[str]) -> dict[str, str]: ...

    async def query(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]: ...

    async def accounting(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]: ...

    async def cancel(self, uid: str, slurm_id: str) -> bool: ...

    async def user_account(self, name: str) -> slurm.Account | None: ...


class CommandNodes:
    """Command nodes tried in order; unreachable ones are skipped for a while."""

    def __init__(
        self, runners: list[CommandRunner], down_retry_after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not runners:
            raise ValueError("at least one command node is needed")
        self.runners = runners
        self._down_until: dict[str, float] = {}
        self._retry_after = down_retry_after
        self._clock = clock
        self.calls = 0  # commands sent, for the watcher's calls-per-tick figure
        self.on_call: Callable[[list[str]], None] = lambda argv: None  # the runner's metrics count them by command

    def _order(self) -> list[CommandRunner]:
        now = self._clock()
        up = [r for r in self.runners if self._down_until.get(r.name, 0.0) <= now]
        down = sorted((r for r in self.runners if r not in up), key=lambda r: self._down_until[r.name])
        return up + down  # when all are down, still try them rather than fail without asking

    def up(self) -> int:
        """How many command nodes are not marked down."""
        now = self._clock()
        return sum(1 for r in self.runners if self._down_until.get(r.name, 0.0) <= now)

    def _mark_down(self, runner: CommandRunner, reason: str) -> None:
        if runner.name not in self._down_until or self._down_until[runner.name] <= self._clock():
            log.warning("command node %s marked down: %s", runner.name, reason)
        self._down_until[runner.name] = self._clock() + self._retry_after

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        """Run on the first node that answers. :class:`CommandIndeterminate` is passed on: the caller decides."""
        failures: list[str] = []
        for runner in self._order():
            self.calls += 1
            self.on_call(argv)
            try:
                out = await runner.run(argv, stdin, timeout)
            except NodeUnreachable as exc:
                self._mark_down(runner, exc.reason)
                failures.append(f"{runner.name}: {exc.reason}")
                continue
            except CommandIndeterminate as exc:
                self._mark_down(runner, exc.reason)
                raise
            self._down_until.pop(runner.name, None)
            return out
        raise SchedulerUnavailable(internal="; ".join(failures))

    async def close(self) -> None:
        for runner in self.runners:
            await runner.close()


def _chunks(ids: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for slurm_id in ids:
        if size + len(slurm_id) + 1 > MAX_ID_LIST_CHARS and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(slurm_id)
        size += len(slurm_id) + 1
    return [c for c in chunks if c]


class SlurmCluster:
    """:class:`Scheduler` over SSH to command nodes; ``helper`` is the site's command-node helper, if any.

    ``sbatch`` and ``scancel`` run as the job's user (:func:`runner.slurm.cli.as_user`); ``squeue``, ``sacct`` and
    ``getent`` as the runner's own account.
    """

    def __init__(self, nodes: CommandNodes, helper: str | None = None) -> None:
        self.nodes = nodes
        self.helper = helper

    async def submit(self, uid: str, runner_job_id: str, workdir: str, script: str) -> str:
        argv = slurm.sbatch_argv(uid, runner_job_id, workdir, self.helper)
        try:
            out = await self.nodes.run(argv, stdin=script)
        except CommandIndeterminate as exc:
            # sbatch may have run: look for the job by its name before submitting again elsewhere.
            name = slurm.job_name(runner_job_id)
            log.warning("job %s: sbatch indeterminate on %s (%s); looking it up", runner_job_id, exc.node, exc.reason)
            found = await self.find_by_names([name])
            if name in found:
                log.info("job %s: found as Slurm job %s after an indeterminate sbatch", runner_job_id, found[name])
                return found[name]
            try:
                out = await self.nodes.run(argv, stdin=script)
            except CommandIndeterminate as again:
                raise SubmissionIndeterminate(internal=f"sbatch indeterminate twice: {again}") from again
        if not out.ok:
            text = slurm.SlurmErrorText.from_stderr(out.stderr).text
            if slurm.controller_unreachable(out.stderr):
                raise SchedulerUnavailable(internal=text)
            raise SchedulerError(f"sbatch failed: {text}", internal=f"exit {out.exit_status} on {out.node}")
        try:
            return slurm.parse_sbatch(out.stdout)
        except SlurmParseError as exc:  # sbatch said it succeeded: the job may well exist
            raise SubmissionIndeterminate(internal=f"{exc} (on {out.node})") from exc

    async def find_by_names(self, names: list[str]) -> dict[str, str]:
        """Slurm ids of jobs with these names, still in the controller's memory."""
        rows = await self._read(slurm.squeue_by_name_argv(names), slurm.parse_squeue)
        return {row["job-name"]: slurm_id for slurm_id, row in rows.items()}

    async def _read(self, argv: list[str], parse: Callable[[str], Rows]) -> Rows:
        """A query as the runner's account, parsed; every failure, an unreadable answer included, is
        :class:`SchedulerUnavailable` (a query's answer is never guessed)."""
        try:
            out = await self.nodes.run(argv)
        except CommandIndeterminate as exc:
            raise SchedulerUnavailable(internal=str(exc)) from exc
        if slurm.squeue_missing_ids(out.exit_status, out.stderr):
            return parse("")
        if not out.ok:
            raise SchedulerUnavailable(internal=slurm.SlurmErrorText.from_stderr(out.stderr).text)
        try:
            return parse(out.stdout)
        except SlurmParseError as exc:
            raise SchedulerUnavailable(internal=f"{exc} (on {out.node})") from exc

    async def query(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]:
        """squeue rows for ``slurm_ids``: one call per 100 KB of ids (one call for 10,000 jobs)."""
        rows: dict[str, dict[str, str]] = {}
        for chunk in _chunks(slurm_ids):
            rows.update(await self._read(slurm.squeue_argv(chunk), slurm.parse_squeue))
        return rows

    async def accounting(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]:
        rows: dict[str, dict[str, str]] = {}
        for chunk in _chunks(slurm_ids):
            rows.update(await self._read(slurm.sacct_argv(chunk), slurm.parse_sacct))
        return rows

    async def cancel(self, uid: str, slurm_id: str) -> bool:
        """``scancel`` as the job's user; False when Slurm no longer knows the job."""
        # scancel is idempotent: asking again after a lost answer is safe.
        out = await self._twice(slurm.scancel_argv(uid, slurm_id, self.helper), SchedulerUnavailable)
        if slurm.scancel_unknown_job(out.stderr):
            return False
        if slurm.controller_unreachable(out.stderr):
            raise SchedulerUnavailable(internal=slurm.SlurmErrorText.from_stderr(out.stderr).text)
        if not out.ok:
            raise SchedulerError(f"scancel failed: {slurm.SlurmErrorText.from_stderr(out.stderr).text}")
        return True

    async def user_account(self, name: str) -> slurm.Account | None:
        """``getent passwd NAME`` on a command node: exit 2 is glibc's "no such key"."""
        out = await self._twice(slurm.getent_argv(name), ClusterUnavailable)  # a read: asking again is safe
        if out.exit_status == 2:
            return None
        if not out.ok:
            raise ClusterUnavailable(internal=f"getent exit {out.exit_status}: {out.stderr.strip()[:200]}")
        try:
            return slurm.parse_getent_passwd(out.stdout, name)
        except SlurmParseError as exc:
            raise ClusterUnavailable(internal=f"{exc} (on {out.node})") from exc

    async def _twice(self, argv: list[str], unavailable: type[ClusterUnavailable]) -> CommandOutput:
        """``argv``, asked once more after a lost answer; a second lost answer is ``unavailable``."""
        try:
            return await self.nodes.run(argv)
        except CommandIndeterminate:
            try:
                return await self.nodes.run(argv)
            except CommandIndeterminate as again:
                raise unavailable(internal=f"no answer twice: {again}") from again
