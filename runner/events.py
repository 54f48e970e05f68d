"""Pushed job state: one etcd watch per runner process over every job record, handed to whoever follows a job.

:class:`JobFeed` keeps a single watch on ``P/jobs/`` (active and done records alike), however many clients
follow jobs, so a change is seen the same way whichever runner process wrote it. Each follower of a job holds a
:class:`Follower`: the newest record the watch delivered for that job, coalesced (a slow client sees the latest
state, not a backlog). An idle follower costs nothing between changes: it waits on its own event.

The watch is open only while somebody follows a job (and for :data:`LINGER` seconds after the last one left, so
a frontend opening one short wait after another does not open a watch each time): a runner whose frontend never
follows jobs pays nothing per job change. Each time a watch opens, and each time it breaks (etcd restarted, the
connection dropped) and is started again from the current revision, every follower is told to read its job again,
so a change made while no watch was open is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import ValidationError

from runner.etcd import ETCD_ERRORS, cancel_watch, open_watch
from runner.records import JobRecord

log = logging.getLogger(__name__)


LINGER = 30.0
"""Seconds the feed's watch stays open after its last follower left."""

RESYNC: Literal["resync"] = "resync"
"""What :meth:`Follower.next` answers when the watch was restarted: changes may be missed; read the job again."""


class Follower:
    """The newest record of one job the feed delivered, and a wake-up when a newer one comes."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._latest: tuple[int, JobRecord] | None = None
        self._resync = False
        self._changed = asyncio.Event()

    def offer(self, revision: int, record: JobRecord) -> None:
        if self._latest is None or revision > self._latest[0]:
            self._latest = (revision, record)
            self._changed.set()

    def resync(self) -> None:
        self._resync = True
        self._changed.set()

    async def next(self, after: int, timeout: float | None = None) -> tuple[int, JobRecord] | Literal["resync"] | None:
        """The first record newer than revision ``after``; :data:`RESYNC` when the feed restarted its watch;
        None after ``timeout`` seconds with neither."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    if self._resync:
                        self._resync = False
                        return RESYNC
                    if self._latest is not None and self._latest[0] > after:
                        return self._latest
                    self._changed.clear()
                    await self._changed.wait()
        return None


class JobFeed:
    """One watch over the job records of ``prefix``, open while followers subscribe per job."""

    def __init__(self, client: Any, prefix: str, *, linger: float = LINGER) -> None:
        self._client = client
        self._prefix = f"{prefix.rstrip('/')}/jobs/".encode()
        self._followers: dict[str, set[Follower]] = {}
        self.linger = linger
        self.watches = 0  # watches opened since start
        self.ready = asyncio.Event()  # set while a watch is open
        self._wanted = asyncio.Event()  # set while somebody follows
        self._unwanted = asyncio.Event()  # set while nobody follows
        self._unwanted.set()

    @contextlib.asynccontextmanager
    async def follow(self, job_id: str) -> AsyncIterator[Follower]:
        follower = Follower(job_id)
        self._followers.setdefault(job_id, set()).add(follower)
        self._unwanted.clear()
        self._wanted.set()
        try:
            yield follower
        finally:
            followers = self._followers.get(job_id, set())
            followers.discard(follower)
            if not followers:
                self._followers.pop(job_id, None)
            if not self._followers:
                self._wanted.clear()
                self._unwanted.set()

    @property
    def following(self) -> int:
        """How many followers are subscribed."""
        return sum(len(f) for f in self._followers.values())

    async def run(self) -> None:
        """Open the watch whenever somebody follows, until it breaks (the caller's loop starts this again)."""
        try:
            while True:
                await self._wanted.wait()
                await self._follow()
        except ETCD_ERRORS as exc:
            log.warning("job feed: watch lost (%s: %s); starting again", type(exc).__name__, exc)

    async def _follow(self) -> None:
        watch = await open_watch(self._client, self._prefix)
        self.watches += 1
        log.debug("job feed: watch opened for %d followers", self.following)
        for followers in list(self._followers.values()):
            for follower in followers:
                follower.resync()  # read before the watch was open: a change since then would be missed
        self.ready.set()
        closer = asyncio.create_task(self._close_when_unwanted(watch), name="job-feed-linger")
        try:
            async for event in watch:
                if event.kind == "PUT":
                    self._deliver(event.kv.key, event.kv.value, event.kv.mod_revision)
        finally:
            closer.cancel()
            self.ready.clear()
            await cancel_watch(watch)

    async def _close_when_unwanted(self, watch: Any) -> None:
        """End the watch once nobody has followed for :attr:`linger` seconds (which ends :meth:`_follow`)."""
        while True:
            await self._unwanted.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.linger):
                    await self._wanted.wait()
                    continue  # somebody followed again within the linger: keep the watch
            log.debug("job feed: nobody follows; watch closed")
            await cancel_watch(watch)
            return

    def _deliver(self, key: bytes, value: bytes, revision: int) -> None:
        job_id = key.rsplit(b"/", 1)[-1].decode(errors="replace")
        followers = self._followers.get(job_id)
        if not followers:
            return
        try:
            record = JobRecord.model_validate_json(value)
        except ValidationError:
            log.warning("job feed: unreadable record at %r; ignored", key[:200])
            return
        for follower in followers:
            follower.offer(revision, record)
