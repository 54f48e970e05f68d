"""The active job records as a long-lived view: one full read, then an etcd watch resumed from it.

The job watcher ticks every second or so over every active job; reading every record from etcd each tick costs
bytes and CPU in proportion to the job count even when nothing changed. :class:`ActiveJobs` reads them once,
then applies the watch's events (a new or changed record, a record that left ``active``), so a steady tick reads
nothing from etcd. When the watch is lost (etcd restarted, the revision was compacted, the connection dropped)
the next :meth:`ActiveJobs.snapshot` reads everything again and starts a new watch.

The watch is started *before* the full read, and every event carries its revision: an event older than the
record the read returned is dropped, so the view never goes back in time whichever arrives first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from runner.etcd import ETCD_ERRORS, cancel_watch, open_watch
from runner.records import JobRecord
from runner.state import StateStore

log = logging.getLogger(__name__)


class ActiveJobs:
    """``job id -> (record, revision)`` of every active job, kept current by one etcd watch."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._prefix = f"{store.prefix}/jobs/active/".encode()
        self._jobs: dict[str, tuple[JobRecord, int]] = {}
        # revision at which the caller saw a job leave active, until the watch's own delete arrives
        self._gone: dict[str, int] = {}
        self._raw: dict[str, tuple[bytes, int]] = {}  # records from the watch, parsed when a snapshot is taken
        self._task: asyncio.Task[None] | None = None
        self._resyncing = asyncio.Lock()  # the view is shared: loops asking at once cause one full read
        self.full_reads = 0  # how often everything was read (1 while the first watch lasts)
        store.on_written.append(self.wrote)  # this process's own writes are seen at once

    @property
    def following(self) -> bool:
        return self._task is not None and not self._task.done()

    async def snapshot(self) -> list[tuple[JobRecord, int]]:
        """Every active record with its revision; read in full only when no watch is running.

        The records are shared by every caller and must not be edited: :meth:`StateStore.update_job` applies
        a change to a copy.
        """
        if not self.following:
            async with self._resyncing:
                if not self.following:
                    await self._resync()
        self._parse_pending()
        return list(self._jobs.values())

    def wrote(self, record: JobRecord, revision: int) -> None:
        """A record this process wrote at ``revision``: seen at once, before its event arrives."""
        self._apply(record.job_id, record if record.active else None, revision)

    async def _resync(self) -> None:
        watch = await open_watch(self._store.client, self._prefix)
        try:
            jobs = await self._store.active_jobs()
        except BaseException:
            await cancel_watch(watch)
            raise
        self.full_reads += 1
        if self.full_reads > 1:
            log.info("watcher: job view read again (%d active jobs): its watch was lost", len(jobs))
        self._jobs = {record.job_id: (record, revision) for record, revision in jobs}
        self._gone.clear()
        self._raw.clear()
        self._task = asyncio.create_task(self._follow(watch), name="active-jobs-watch")

    async def _follow(self, watch: Any) -> None:
        try:
            async for event in watch:
                job_id = event.kv.key[len(self._prefix) :].decode(errors="replace")
                if event.kind == "DELETE":
                    self._apply(job_id, None, event.kv.mod_revision)
                    self._gone.pop(job_id, None)  # the watch is in revision order: nothing older follows
                    continue
                if self._newer(job_id, event.kv.mod_revision):
                    # parsed when a snapshot needs it: this process's own write usually arrives first
                    # through :meth:`wrote`, and then the event's copy is never parsed at all
                    self._raw[job_id] = (event.kv.value, event.kv.mod_revision)
        except ETCD_ERRORS as exc:
            log.warning("watcher: watch of active jobs lost (%s: %s)", type(exc).__name__, exc)
        finally:
            await cancel_watch(watch)

    def _newer(self, job_id: str, revision: int) -> bool:
        held, raw = self._jobs.get(job_id), self._raw.get(job_id)
        return revision > max(held[1] if held else 0, raw[1] if raw else 0, self._gone.get(job_id, 0))

    def _apply(self, job_id: str, record: JobRecord | None, revision: int) -> None:
        if not self._newer(job_id, revision):
            return  # older than what the view holds
        self._raw.pop(job_id, None)
        if record is None:
            self._jobs.pop(job_id, None)
            self._gone[job_id] = revision
        else:
            self._jobs[job_id] = (record, revision)

    def _parse_pending(self) -> None:
        pending, self._raw = self._raw, {}
        for job_id, (value, revision) in pending.items():
            try:
                self._jobs[job_id] = (JobRecord.model_validate_json(value), revision)
            except ValidationError:
                log.warning("watcher: unreadable record of job %r ignored", job_id[:64])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WatchedPrefix:
    """``key -> (value, mod revision)`` of every key under a prefix: one range read, then a watch resumed from it.

    The same pattern as :class:`ActiveJobs` for raw values (the keyhole's port reservations): the watch is opened
    before the read, an event older than what is held is dropped, and a lost watch means one full read again at
    the next :meth:`items`. :meth:`forget` drops a key this process deleted before the watch reports it.
    """

    def __init__(self, client: Any, prefix: bytes, name: str) -> None:
        self._client, self._prefix, self._name = client, prefix, name
        self._held: dict[bytes, tuple[bytes, int]] = {}
        self._deleted: dict[bytes, int] = {}  # key -> revision of the value this process deleted
        self._task: asyncio.Task[None] | None = None
        self._reading = asyncio.Lock()
        self.full_reads = 0

    async def items(self) -> dict[bytes, tuple[bytes, int]]:
        if self._task is None or self._task.done():
            async with self._reading:
                if self._task is None or self._task.done():
                    await self._read_all()
        return self._held

    def forget(self, key: bytes, revision: int) -> None:
        held = self._held.get(key)
        if held is not None and held[1] <= revision:
            del self._held[key]
            self._deleted[key] = revision

    async def _read_all(self) -> None:
        watch = await open_watch(self._client, self._prefix)
        try:
            rows = await self._client.get_prefix(self._prefix)
        except BaseException:
            await cancel_watch(watch)
            raise
        self.full_reads += 1
        if self.full_reads > 1:
            log.info("%s read again (%d keys): its watch was lost", self._name, len(rows))
        self._held = {kv.key: (kv.value, kv.mod_revision) for kv in rows}
        self._deleted.clear()
        self._task = asyncio.create_task(self._watch(watch), name=f"{self._name}-watch")

    async def _watch(self, watch: Any) -> None:
        try:
            async for event in watch:
                key, revision = event.kv.key, event.kv.mod_revision
                held = self._held.get(key)
                if event.kind == "DELETE":
                    self._deleted.pop(key, None)
                    if held is None or held[1] < revision:
                        self._held.pop(key, None)
                elif revision > max(held[1] if held else 0, self._deleted.get(key, 0)):
                    self._held[key] = (event.kv.value, revision)
        except ETCD_ERRORS as exc:
            log.warning("%s: watch lost (%s: %s)", self._name, type(exc).__name__, exc)
        finally:
            await cancel_watch(watch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
