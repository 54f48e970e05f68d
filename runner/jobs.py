"""The job service: submission, cancellation and lookups, written once above etcd and the Scheduler protocol.

Submission saves as it goes, so a crash at any point can be reconciled by the watcher: the record (with the
job's keyhole token and session secret) is written before ``sbatch`` runs, and the Slurm id right after, off the
request's path (:meth:`runner.state.StateStore.update_later`). The session secret is what the job's application
asks its user for; it reaches the job inside the script piped to sbatch and the frontend only through
:meth:`Jobs.session_secret` (the authenticated API), and is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping

from runner.errors import InvalidUser, NoSuchJob, NoSuchRunningJob, RunnerError, SubmissionIndeterminate
from runner.events import RESYNC, JobFeed
from runner.metrics import RunnerMetrics
from runner.records import JobRecord, JobState, submission_failed, submitted_as
from runner.slurm.cluster import Scheduler
from runner.state import StateStore
from runner.templates import TemplateStore
from runner.users import ClusterUsers, check_user_name

log = logging.getLogger(__name__)

KeyholeExpander = Callable[[str, str, str, str], str]
"""``expand(script, job_id, token, session_secret) -> script`` replacing the ``#KEYHOLE-REQUEST-PORTS`` line."""


class Jobs:
    """:class:`runner.service.JobService` over etcd and Slurm."""

    def __init__(
        self,
        store: StateStore,
        scheduler: Scheduler,
        templates: TemplateStore,
        home_prefix: str,
        *,
        users: ClusterUsers,
        expand_keyhole: KeyholeExpander | None = None,
        max_jobs_per_user: int | None = None,
        feed: JobFeed | None = None,
        on_submitted: Callable[[], None] | None = None,
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._users = users
        self._templates = templates
        self._home_prefix = home_prefix.rstrip("/")
        self._expand_keyhole = expand_keyhole
        self._max_jobs_per_user = max_jobs_per_user  # taken with the record's creation (runner.state)
        self._feed = feed
        self._on_submitted = on_submitted
        self._metrics = metrics or RunnerMetrics()

    async def submit(self, uid: str, template_name: str, variables: Mapping[str, str]) -> str:
        with self._metrics.submission():
            return await self._submit(uid, template_name, variables)

    async def _submit(self, uid: str, template_name: str, variables: Mapping[str, str]) -> str:
        # checked before any I/O: the template and its variables first, then the user's name
        script, keyhole_ports, session_url = self._templates.prepare(template_name, variables)
        check_user_name(uid)
        await self._users.ordinary(uid)  # the one 4xx that needs I/O (a getent, kept a while); nothing stored yet
        job_id = uuid.uuid4().hex
        token = secrets.token_urlsafe(32)
        session_secret = secrets.token_urlsafe(24)
        if keyhole_ports is not None:
            if self._expand_keyhole is None:
                raise RunnerError(internal="template requests ports but no keyhole service is configured")
            script = self._expand_keyhole(script, job_id, token, session_secret)
        record = JobRecord(
            job_id=job_id,
            uid=uid,
            template_name=template_name,
            variables=dict(variables),
            session_url=session_url,
        )
        revision = await self._store.create_job(record, token, session_secret, max_active=self._max_jobs_per_user)
        workdir = f"{self._home_prefix}/{uid}"
        try:
            slurm_id = await self._scheduler.submit(uid, job_id, workdir, script)
        except SubmissionIndeterminate as exc:
            log.warning("job %s (uid %s): submission indeterminate, left to the watcher: %s", job_id, uid, exc.internal)
            raise
        except RunnerError as exc:
            log.warning("job %s (uid %s): submission failed: %s", job_id, uid, exc)
            await self._store.update_job(job_id, submission_failed(exc.public), known=(record, revision))
            raise
        # Saved off the request's path, batched with concurrent submissions' ids; this process reads it back at
        # once. A crash before it is stored is reconciled: the watcher finds the job by its Slurm name.
        self._store.update_later(record, revision, submitted_as(slurm_id))
        log.info("job %s (uid %s, template %s): submitted as Slurm job %s", job_id, uid, template_name, slurm_id)
        if self._on_submitted is not None:
            self._on_submitted()
        return job_id

    async def cancel(self, job_id: str) -> None:
        record = await self._store.get_job(job_id)
        if record is None or not record.active:
            raise NoSuchRunningJob
        if record.slurm_id is not None and not await self._scheduler.cancel(record.uid, record.slurm_id):
            raise NoSuchRunningJob  # Slurm no longer knows it: it ended; the watcher records how
        await self._store.update_job(job_id, _cancel_requested)
        log.info("job %s (uid %s): cancel requested", job_id, record.uid)

    async def get(self, job_id: str) -> JobRecord:
        record = await self._store.get_job(job_id)
        if record is None:
            raise NoSuchJob
        return record

    async def changes(self, job_id: str, *, keepalive: float | None = None) -> AsyncGenerator[JobRecord | None, None]:
        """The job's record now, then each newer one until one is finished; None after ``keepalive`` seconds
        without a change. NoSuchJob (at the first step) if the job is unknown."""
        if self._feed is None:
            raise RunnerError(internal="no job feed: pushed job state is not available")
        async with self._feed.follow(job_id) as follower:  # before the read: no change between them is missed
            found = await self._store.read_job(job_id)
            if found is None:
                raise NoSuchJob
            record, revision = found
            yield record
            while record.active:
                got = await follower.next(revision, keepalive)
                if got is None:
                    yield None
                    continue
                if got == RESYNC:
                    found = await self._store.read_job(job_id)
                    if found is None:
                        return
                    got = found[1], found[0]
                revision, record = got
                yield record

    async def wait_for(self, job_id: str, state: JobState, timeout: float) -> JobRecord:
        """The record once the job is in ``state`` (or finished: it never will be), or as it is at ``timeout``."""
        stream = self.changes(job_id)
        record = await anext(stream)
        assert record is not None  # no keepalive asked for
        try:
            async with asyncio.timeout(timeout):
                while record.state is not state and record.active:
                    got = await anext(stream)
                    record = got if got is not None else record
        except TimeoutError:
            found = await self._store.read_job(job_id)
            record = found[0] if found is not None else record
        finally:
            await stream.aclose()
        return record

    async def session_secret(self, job_id: str) -> str | None:
        return await self._store.get_session_secret(job_id)

    async def list_active(self) -> list[str]:
        return await self._store.active_ids()

    async def check_user(self, username: str) -> bool:
        check_user_name(username, "username")
        try:
            await self._users.ordinary(username, "username")
        except InvalidUser as exc:  # unknown or refused: to the frontend alike, no user it may start jobs for
            log.info("check-user %s: %s", username, exc.public)
            return False
        return True


def _cancel_requested(record: JobRecord) -> JobRecord:
    record.cancel_requested = True
    if record.state is not JobState.FINISHED:
        record.state = JobState.COMPLETING
    return record
