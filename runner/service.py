"""What the API layer asks of the runner: the job service interface.

The REST routers depend only on this protocol; :class:`runner.jobs.Jobs` implements it over etcd and
the cluster. Every method raises :mod:`runner.errors` types for the caller's mistakes and for outages.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

from runner.records import JobRecord, JobState


class JobService(Protocol):
    async def submit(self, uid: str, template_name: str, variables: Mapping[str, str]) -> str:
        """Validate, render and submit a job; return the runner's job id once Slurm accepted it.

        Raises InvalidUser/InvalidTemplateName/UnknownTemplate/InvalidVariable/TemplateError (4xx) before
        anything reaches the cluster; RefusedUser/UnknownUser (4xx) when ``uid`` is no ordinary account of the
        cluster (one ``getent passwd``, none for the runner's own accounts), before anything is stored or
        submitted; ClusterUnavailable/SchedulerError/StateUnavailable (5xx) after.
        """
        ...

    async def cancel(self, job_id: str) -> None:
        """``scancel`` the job; NoSuchRunningJob if unknown or already finished."""
        ...

    async def get(self, job_id: str) -> JobRecord:
        """The stored record; NoSuchJob if unknown. Never calls Slurm."""
        ...

    def changes(self, job_id: str, *, keepalive: float | None = None) -> AsyncGenerator[JobRecord | None, None]:
        """The record now, then each newer one (fed by the runner's one etcd watch) until one is finished;
        None after ``keepalive`` seconds without a change; NoSuchJob at the first step if unknown."""
        ...

    async def wait_for(self, job_id: str, state: JobState, timeout: float) -> JobRecord:
        """The record once the job is in ``state`` or finished, or as it is after ``timeout`` seconds."""
        ...

    async def session_secret(self, job_id: str) -> str | None:
        """The secret the job's application asks its user for, while the job is active; None after. Never logged."""
        ...

    async def list_active(self) -> list[str]:
        """Ids of jobs that are not finished. Never calls Slurm."""
        ...

    async def check_user(self, username: str) -> bool:
        """Whether the user exists on the cluster and jobs may run as them (asks a command node, kept a while).

        False also for accounts :meth:`submit` refuses (root, system accounts, the overflow account, the
        runner's own), so the frontend offers no user it cannot start jobs for.
        """
        ...
