"""The job watcher: one batched ``squeue`` per tick for every active runner job, mapped to bwVisu's states.

The active jobs come from :class:`runner.active.ActiveJobs`: read from etcd once, then kept by a watch, so a
tick in which nothing changed reads nothing from etcd.

A job missing from a *successful* squeue has ended; its end state and exit code come from ``sacct``. A failed
squeue never ends a job: the last state stays and the job's details say the scheduler state is unknown.
Records whose submission was interrupted (no Slurm id saved) are looked up by their Slurm job name.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from runner.active import ActiveJobs
from runner.errors import RunnerError
from runner.records import CANCEL_REASON, Change, JobRecord, JobState, submission_failed, submitted_as
from runner.slurm import cli as slurm
from runner.slurm.cluster import Scheduler
from runner.state import StateStore

log = logging.getLogger(__name__)

NEVER_SUBMITTED = "the submission was interrupted before Slurm accepted the job"
UNKNOWN_NOTE = "scheduler-state"
UNKNOWN_TEXT = "unknown: the scheduler could not be asked"


@dataclass
class TickStats:
    """What one tick did: the figures the benchmarks report."""

    active: int = 0
    queried: int = 0
    updated: int = 0
    scheduler_ok: bool = True


class JobWatcher:
    def __init__(
        self, store: StateStore, scheduler: Scheduler, pending_grace: float, view: ActiveJobs | None = None
    ) -> None:
        self._store = store
        self.view = view or ActiveJobs(store)  # read in full once, then kept by an etcd watch; may be shared
        self._scheduler = scheduler
        self._pending_grace = pending_grace  # how long a submission may legitimately be in flight

    async def tick(self) -> TickStats:
        jobs = await self.view.snapshot()
        stats = TickStats(active=len(jobs))
        await self._adopt_interrupted(jobs)
        tracked = [(r, rev) for r, rev in jobs if r.slurm_id is not None]
        stats.queried = len(tracked)
        if not tracked:
            return stats
        try:
            rows = await self._scheduler.query([r.slurm_id for r, _ in tracked if r.slurm_id])
        except RunnerError as exc:
            stats.scheduler_ok = False
            log.warning("watcher: squeue failed, keeping last states of %d jobs: %s", len(tracked), exc)
            await self._store.update_jobs([(r, rev, _mark_unknown) for r, rev in tracked if not r.scheduler_unknown])
            return stats
        ended = [sid for r, _ in tracked if (sid := r.slurm_id) is not None and _has_ended(rows.get(sid))]
        accounting: dict[str, dict[str, str]] = {}
        if ended:
            try:
                accounting = await self._scheduler.accounting(ended)
            except RunnerError as exc:
                log.warning("watcher: sacct failed for %d ended jobs: %s", len(ended), exc)
        changes: list[tuple[JobRecord, int, Change]] = []
        for record, rev in tracked:
            assert record.slurm_id is not None
            row = rows.get(record.slurm_id)
            if _has_ended(row):
                acct = accounting.get(record.slurm_id)
                if row is not None and acct is not None and not _is_final(acct):
                    continue  # accounting lags the controller for a moment after the end: ask again next tick
                change = _ended(row, acct)
            else:
                assert row is not None
                if not _observation_differs(record, row):
                    continue  # most jobs, most ticks: nothing to write, nothing to copy
                change = observed(row)
            changes.append((record, rev, change))
        # One transaction per batch of records: a tick where thousands of jobs start costs few round trips.
        stats.updated = await self._store.update_jobs(changes)
        return stats

    async def close(self) -> None:
        await self.view.close()

    async def _adopt_interrupted(self, jobs: list[tuple[JobRecord, int]]) -> None:
        """Find the Slurm job of records saved before sbatch whose submitter went away."""
        now = time.time()
        stale = [r for r, _ in jobs if r.slurm_id is None and now - r.created_at > self._pending_grace]
        if not stale:
            return
        try:
            found = await self._scheduler.find_by_names([slurm.job_name(r.job_id) for r in stale])
        except RunnerError as exc:
            log.warning("watcher: cannot look up %d interrupted submissions: %s", len(stale), exc)
            return
        for record in stale:
            slurm_id = found.get(slurm.job_name(record.job_id))
            if slurm_id is not None:
                log.info("job %s: interrupted submission found as Slurm job %s", record.job_id, slurm_id)
                await self._store.update_job(record.job_id, submitted_as(slurm_id))
            else:
                log.warning("job %s: submission never reached Slurm; finishing it", record.job_id)
                await self._store.update_job(record.job_id, submission_failed(NEVER_SUBMITTED))


def _observed_state(record: JobRecord, row: dict[str, str]) -> JobState:
    state = slurm.bwvisu_state(row["slurm-state"])
    if state is JobState.RUNNING and record.state is JobState.AVAILABLE:
        state = JobState.AVAILABLE  # readiness is the keyhole watcher's call
    if record.cancel_requested and state in (JobState.RUNNING, JobState.AVAILABLE, JobState.SUBMITTED):
        state = JobState.COMPLETING
    return state


def _observation_differs(record: JobRecord, row: dict[str, str]) -> bool:
    """Whether applying :func:`observed` would change the record (checked without copying it)."""
    return (
        record.scheduler_unknown
        or record.state is not _observed_state(record, row)
        or record.slurm_state != row["slurm-state"]
        or not row.items() <= record.details.items()  # every reported value already in the details
    )


def observed(row: dict[str, str]) -> Change:
    """What a squeue row tells about a job that has not ended (the change each tick applies)."""

    def change(record: JobRecord) -> JobRecord:
        record.state = _observed_state(record, row)
        record.slurm_state = row["slurm-state"]
        record.scheduler_unknown = False
        record.details = {**record.details, **row}
        record.details.pop(UNKNOWN_NOTE, None)
        return record

    return change


def _has_ended(row: dict[str, str] | None) -> bool:
    """Gone from a successful squeue, or still listed (``-t all``) in an end state."""
    return row is None or slurm.bwvisu_state(row["slurm-state"]) is JobState.FINISHED


def _is_final(acct: dict[str, str]) -> bool:
    return slurm.bwvisu_state(acct["slurm-state"]) is JobState.FINISHED


# Right after a job ends, sacct names it "allocation" with only its first node; the controller's view wins.
_CONTROLLER_FIELDS = ("job-name", "node-list")


def _ended(row: dict[str, str] | None, acct: dict[str, str] | None) -> Change:
    def change(record: JobRecord) -> JobRecord:
        record.state = JobState.FINISHED
        record.scheduler_unknown = False
        record.details.pop(UNKNOWN_NOTE, None)
        accounted = {k: v for k, v in (acct or {}).items() if k not in _CONTROLLER_FIELDS or k not in record.details}
        record.details = {**record.details, **accounted, **(row or {})}
        record.slurm_state = record.details.get("slurm-state")
        if row is None and acct is None:
            record.details["end-reason"] = "job left the queue; accounting has no record"
        if CANCEL_REASON in record.details:  # the runner cancelled it (runner.idle): say why
            record.details["end-reason"] = (
                f"{record.details.get('end-reason', 'CANCELLED')} ({record.details[CANCEL_REASON]})"
            )
        return record

    return change


def _mark_unknown(record: JobRecord) -> JobRecord:
    record.scheduler_unknown = True
    record.details[UNKNOWN_NOTE] = UNKNOWN_TEXT
    return record
