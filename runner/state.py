"""The runner's state in etcd: job records, their secret tokens, and the index of active jobs.

Layout under the configured prefix ``P``::

    P/jobs/active/<job id>   JobRecord JSON of a job that is not finished
    P/jobs/done/<job id>     JobRecord JSON of a finished job
    P/tokens/<job id>        the job's keyhole token (deleted when the job finishes)
    P/sessions/<job id>      the job's session secret: what its application asks its user for (likewise)
    P/quota/<uid>/<slot>     the job id holding one of the user's places under ``max-jobs-per-user``

Moving a record from ``active`` to ``done`` happens in one transaction, so listing active jobs is one range
read and never sees a job twice. Updates are compare-and-swap on the key's revision, so the job watcher and
the keyhole service never overwrite each other's changes.

With a limit on unfinished jobs per user, a job is created together with one of its user's place keys
(``slot`` 0 .. limit-1) in one transaction that requires the key to be absent, so runner processes submitting
at once for one user never accept more than the limit. The record names its place (``quota_slot``); the write
that finishes the job, or first asks to cancel it, deletes the key and clears the field together.

A change may be saved *later* (:meth:`StateStore.update_later`: the Slurm id after ``sbatch``): it is written
off the caller's path, batched with the others pending, and retried until it is stored; meanwhile every read
of this store shows the record with the change applied, so this process never sees the job without it. A crash
before the write loses only what Slurm also knows: the job carries its runner id in its Slurm name, and the job
watcher finds it by that name (:class:`runner.watcher.JobWatcher`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aetcd
import aetcd.exceptions

from runner.errors import Conflict, StateUnavailable, TooManyJobs
from runner.etcd import ETCD_ERRORS, unavailable
from runner.records import Change, JobRecord, JobState

log = logging.getLogger(__name__)

Written = Callable[[JobRecord, int], None]
"""``(record, revision)`` of a record a batch wrote."""

MAX_CAS_ATTEMPTS = 20
# Operations per batched transaction: etcd allows 128 by default (--max-txn-ops); an active record's write takes
# 1, a finished job's 4 (and one more when it frees a place under max-jobs-per-user).
MAX_TXN_OPS = 128
# A later write that meets an etcd outage is tried again after 0.1 s, 0.2 s, ... at most this many seconds.
LATER_RETRY_MAX = 5.0
# Seconds closing the store waits for the later writes still pending.
LATER_FLUSH_TIMEOUT = 10.0


def describe(record: JobRecord) -> str:
    """A job as a state-change log line names it: runner id, user, Slurm id and nodes once known, and why it
    ended."""
    parts = [f"user {record.uid}"]
    if record.slurm_id:
        parts.append(f"Slurm job {record.slurm_id}")
    nodes = record.details.get("node-list", "")
    if nodes and nodes not in ("(null)", "None assigned"):
        parts.append(f"node {nodes}")
    for key in ("end-reason", "exit-code", "submission-error"):
        if record.state is JobState.FINISHED and record.details.get(key):
            parts.append(f"{key} {record.details[key]}")
    return f"job {record.job_id} ({', '.join(parts)})"


class StateStore:
    """Job records in etcd."""

    def __init__(self, client: aetcd.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/")
        self.on_written: list[Written] = []  # told of every record this store writes, with its revision
        # job id -> (record, revision, change) not yet written: see update_later
        self._later: dict[str, tuple[JobRecord, int, Change]] = {}
        self._later_task: asyncio.Task[None] | None = None

    def _active_key(self, job_id: str) -> bytes:
        return f"{self.prefix}/jobs/active/{job_id}".encode()

    def _done_key(self, job_id: str) -> bytes:
        return f"{self.prefix}/jobs/done/{job_id}".encode()

    def _token_key(self, job_id: str) -> bytes:
        return f"{self.prefix}/tokens/{job_id}".encode()

    def _session_key(self, job_id: str) -> bytes:
        return f"{self.prefix}/sessions/{job_id}".encode()

    def _slot_key(self, uid: str, slot: int | None = None) -> bytes:
        return f"{self.prefix}/quota/{uid}/{'' if slot is None else f'{slot:05d}'}".encode()

    async def create_job(
        self, record: JobRecord, token: str, session_secret: str | None = None, *, max_active: int | None = None
    ) -> int:
        """Store a new job, its token and session secret; Conflict if the id exists. Returns the revision.

        With ``max_active``, the job also takes a free place of its user's, or :class:`TooManyJobs` is raised
        and nothing is stored.
        """
        for _ in range(MAX_CAS_ATTEMPTS):
            if max_active is not None:
                record.quota_slot = await self._free_slot(record.uid, max_active)
            created = await self._create(record, token, session_secret)
            if created is not None:
                return created
        raise StateUnavailable(internal=f"user {record.uid}: places changed too often")

    async def _free_slot(self, uid: str, limit: int) -> int:
        try:
            rows = await self.client.get_prefix(self._slot_key(uid), keys_only=True)
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        taken = {int(kv.key.rsplit(b"/", 1)[1]) for kv in rows}
        free = [slot for slot in range(limit) if slot not in taken]
        if not free:
            raise TooManyJobs(
                f"user {uid} has {len(taken)} unfinished jobs; at most {limit} are allowed",
                internal=f"max-jobs-per-user {limit}",
            )
        return random.choice(free)  # noqa: S311 - concurrent submissions spread over the free places

    async def _create(self, record: JobRecord, token: str, session_secret: str | None) -> int | None:
        """One try; None when the place was taken meanwhile."""
        key = self._active_key(record.job_id)
        tx = self.client.transactions
        compare = [tx.create(key) == 0, tx.create(self._done_key(record.job_id)) == 0]
        success = [
            tx.put(key, record.model_dump_json().encode()),
            tx.put(self._token_key(record.job_id), token.encode()),
            *([tx.put(self._session_key(record.job_id), session_secret.encode())] if session_secret else []),
        ]
        if record.quota_slot is not None:
            slot = self._slot_key(record.uid, record.quota_slot)
            compare.append(tx.create(slot) == 0)
            success.append(tx.put(slot, record.job_id.encode()))
        try:
            ok, responses = await self.client.transaction(compare=compare, success=success, failure=[tx.get(key)])
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        if ok:
            revision: int = responses[0].response_put.header.revision
            self._written(record, revision)
            return revision
        if record.quota_slot is None or responses[0]:  # no place was asked for, or the id exists
            raise Conflict(f"job {record.job_id} exists")
        return None

    async def _read(self, job_id: str, *, pending: bool = True) -> tuple[JobRecord, int, bool] | None:
        """The record, its key's mod revision, and whether it is active; with ``pending``, with the change
        :meth:`update_later` holds for it applied."""
        try:
            got = await self.client.get(self._active_key(job_id))
            active = got is not None
            if got is None:
                got = await self.client.get(self._done_key(job_id))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        if got is None:
            return None
        record = JobRecord.model_validate_json(got.value)
        later = self._later.get(job_id) if pending and active else None
        if later is not None:
            record = later[2](record) or record
        return record, got.mod_revision, active

    async def read_job(self, job_id: str) -> tuple[JobRecord, int] | None:
        """The record (active or done) and the revision it was last written at; None if unknown."""
        found = await self._read(job_id)
        return None if found is None else (found[0], found[1])

    async def get_job(self, job_id: str) -> JobRecord | None:
        found = await self._read(job_id)
        return None if found is None else found[0]

    async def get_token(self, job_id: str) -> str | None:
        try:
            got = await self.client.get(self._token_key(job_id))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return None if got is None else got.value.decode()

    async def get_session_secret(self, job_id: str) -> str | None:
        """The job's session secret while the job is active; None once it finished (or if it has none)."""
        try:
            got = await self.client.get(self._session_key(job_id))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return None if got is None else got.value.decode()

    def _apply(self, current: JobRecord, change: Change) -> JobRecord | None:
        """``change`` applied to a copy of ``current``; None when it changes nothing.

        The copy is shallow but for the record's own containers (details, variables, forwards: a change may edit
        them in place; a forward is frozen), so ``current``, which the watcher's view may hold, never changes;
        no parse, no JSON: a tick where thousands of jobs change pays only for the changes and one dump each.
        """
        own = {"details": dict(current.details), "variables": dict(current.variables)}
        copy = current.model_copy(update={**own, "forwards": list(current.forwards)})
        new = change(copy)
        if new is None or new == current:
            return None
        if new.quota_slot is not None and (not new.active or new.cancel_requested):
            new.quota_slot = None  # the write deletes the place's key (_write_ops)
        new.updated_at = time.time()
        return new

    @staticmethod
    def _op_count(current: JobRecord, new: JobRecord) -> int:
        """How many operations :meth:`_write_ops` takes for this write."""
        freed = current.quota_slot is not None and new.quota_slot is None
        return (1 if new.active else 4) + freed

    def _write_ops(self, current: JobRecord, new: JobRecord) -> list[Any]:
        """Store ``new``; a finished job moves to ``done`` and loses its token and session secret; a place
        ``current`` held and ``new`` gave up is freed."""
        tx = self.client.transactions
        key = self._active_key(new.job_id)
        body = new.model_dump_json().encode()
        freed = current.quota_slot is not None and new.quota_slot is None
        release = [tx.delete(self._slot_key(current.uid, current.quota_slot))] if freed else []
        if new.active:
            return [tx.put(key, body), *release]
        return [
            *release,
            tx.delete(key),
            tx.put(self._done_key(new.job_id), body),
            tx.delete(self._token_key(new.job_id)),
            tx.delete(self._session_key(new.job_id)),
        ]

    async def _commit(self, writes: list[tuple[JobRecord, int, JobRecord]]) -> int | None:
        """Write every ``(current, revision, new)`` in one transaction if none changed since it was read; the
        revision written at, or None if one had changed."""
        tx = self.client.transactions
        compare = [tx.mod(self._active_key(current.job_id)) == revision for current, revision, _ in writes]
        ops = [op for current, _, new in writes for op in self._write_ops(current, new)]
        try:
            ok, responses = await self.client.transaction(compare=compare, success=ops, failure=[])
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        if not ok:
            return None
        first = responses[0]  # every operation of a transaction is at the transaction's revision
        written: int = getattr(first, first.WhichOneof("response")).header.revision
        logged = log.isEnabledFor(logging.INFO)
        for current, _, new in writes:
            if logged and new.state != current.state:
                log.info("%s: %s -> %s", describe(new), current.state.value, new.state.value)
            self._written(new, written)
        return written

    def _written(self, record: JobRecord, revision: int) -> None:
        for hook in self.on_written:
            hook(record, revision)

    async def update_job(
        self,
        job_id: str,
        change: Change,
        known: tuple[JobRecord, int] | None = None,
        *,
        pending: bool = True,
    ) -> JobRecord | None:
        """Apply ``change`` to the active record atomically, retrying on concurrent writes.

        ``change`` returns the new record, or None to leave it alone. A record whose new state is finished is
        moved to ``done`` and its token and session secret deleted in the same transaction. Returns the stored
        record, or None if the job is not active. ``known`` (an active record and its revision, from
        :meth:`active_jobs`) saves the first read. Every read applies the change :meth:`update_later` holds for
        the job first (so it is written too), unless ``pending`` is False.
        """
        for attempt in range(MAX_CAS_ATTEMPTS):
            if known is not None and attempt == 0:
                found: tuple[JobRecord, int, bool] | None = (known[0], known[1], True)
            else:
                found = await self._read(job_id, pending=pending)
            if found is None or not found[2]:
                return None
            current, revision, _ = found
            new = self._apply(current, change)
            if new is None:
                return current
            if await self._commit([(current, revision, new)]) is not None:
                return new
        raise StateUnavailable(internal=f"job {job_id}: too many concurrent updates")

    async def update_jobs(self, changes: list[tuple[JobRecord, int, Change]], *, pending: bool = True) -> int:
        """Apply many changes to records read by :meth:`active_jobs`, in few transactions; returns how many
        records were written. A batch that meets a concurrent write is redone record by record."""
        todo = [(c, r, n, ch) for c, r, ch in changes if (n := self._apply(c, ch)) is not None]
        written = 0
        for batch in self._batches(todo):
            if await self._commit([(c, r, n) for c, r, n, _ in batch]) is not None:
                written += len(batch)
                continue
            for current, revision, _, change in batch:
                stored = await self.update_job(current.job_id, change, known=(current, revision), pending=pending)
                written += stored is not None and stored is not current
        return written

    def _batches(
        self, todo: list[tuple[JobRecord, int, JobRecord, Change]]
    ) -> list[list[tuple[JobRecord, int, JobRecord, Change]]]:
        """``todo`` cut into transactions of at most :data:`MAX_TXN_OPS` operations (and as many compares)."""
        batches: list[list[tuple[JobRecord, int, JobRecord, Change]]] = []
        ops = 0
        for item in todo:
            count = self._op_count(item[0], item[2])
            if not batches or ops + count > MAX_TXN_OPS or len(batches[-1]) >= MAX_TXN_OPS:
                batches.append([])
                ops = 0
            batches[-1].append(item)
            ops += count
        return batches

    def update_later(self, record: JobRecord, revision: int, change: Change) -> None:
        """Save ``change`` to the active ``record`` (read or written at ``revision``) soon, off the caller's path.

        Until it is stored, every read of this store applies it (and any other update of the job writes it
        too). Pending changes are written in batches (one transaction per :data:`MAX_TXN_OPS` operations) by one
        task, which retries through etcd outages; :meth:`close` waits for them. One pending change per job.
        """
        self._later[record.job_id] = (record, revision, change)
        if self._later_task is None or self._later_task.done():
            self._later_task = asyncio.create_task(self._write_later(), name="state-later-writes")

    async def _write_later(self) -> None:
        delay = 0.1
        while self._later:
            batch = list(self._later.items())
            try:
                # without ``pending``: a redone record is read as stored, not with its own change applied
                await self.update_jobs([entry for _, entry in batch], pending=False)
            except Exception as exc:  # etcd down, mostly: kept and tried again; only cancellation stops this
                log.warning(
                    "%d job records wait to be saved (%s: %s); retrying in %.1f s",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, LATER_RETRY_MAX)
                continue
            delay = 0.1
            for job_id, entry in batch:
                if self._later.get(job_id) is entry:
                    del self._later[job_id]

    async def close(self) -> None:
        """Wait (at most :data:`LATER_FLUSH_TIMEOUT` seconds) for the pending later writes, then stop."""
        task, self._later_task = self._later_task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(LATER_FLUSH_TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for record, _, _ in self._later.values():
                log.warning("%s: not saved before stopping; the job watcher finds it by name", describe(record))
            self._later.clear()

    async def active_ids(self) -> list[str]:
        prefix = f"{self.prefix}/jobs/active/".encode()
        try:
            rows = await self.client.get_prefix(prefix, keys_only=True)
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return [kv.key[len(prefix) :].decode() for kv in rows]

    async def active_jobs(self) -> list[tuple[JobRecord, int]]:
        """Every active record with its revision, in one range read."""
        try:
            rows = await self.client.get_prefix(f"{self.prefix}/jobs/active/".encode())
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return [(JobRecord.model_validate_json(kv.value), kv.mod_revision) for kv in rows]
