"""An in-memory job service and an HTTP client for the API's own unit tests (no etcd, no cluster)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from runner.api import create_app
from runner.config import ApiSettings, Settings
from runner.errors import NoSuchJob, NoSuchRunningJob
from runner.jobs import Jobs
from runner.records import JobRecord, JobState
from runner.templates import TemplateStore
from runner.users import ClusterUsers

EXAMPLE_TEMPLATES = Path(__file__).resolve().parents[2] / "runner" / "templates"
USER = "bwvisu-web"
PASSWORD = "s3cret-Pa55"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@dataclass
class FakeJobService:
    """Keeps jobs in a dict and records every call; ``fail_with`` makes every call raise."""

    jobs: dict[str, JobRecord] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    users: set[str] = field(default_factory=lambda: {"alice", "bob"})
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    fail_with: BaseException | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if self.fail_with is not None:
            raise self.fail_with

    @property
    def submits(self) -> list[tuple[object, ...]]:
        return [args for name, args in self.calls if name == "submit"]

    def add(self, **fields: object) -> JobRecord:
        record = JobRecord.model_validate(
            {"job_id": f"job-{next(self._ids)}", "uid": "alice", "template_name": "t.txt", "variables": {}} | fields
        )
        self.jobs[record.job_id] = record
        return record

    async def submit(self, uid: str, template_name: str, variables: Mapping[str, str]) -> str:
        self._call("submit", uid, template_name, dict(variables))
        return self.add(uid=uid, template_name=template_name, variables=dict(variables)).job_id

    async def cancel(self, job_id: str) -> None:
        self._call("cancel", job_id)
        record = self.jobs.get(job_id)
        if record is None or not record.active:
            raise NoSuchRunningJob(internal=f"job {job_id} unknown or finished")
        self.jobs[job_id] = record.model_copy(update={"state": JobState.COMPLETING, "cancel_requested": True})

    async def get(self, job_id: str) -> JobRecord:
        self._call("get", job_id)
        if job_id not in self.jobs:
            raise NoSuchJob(internal=f"job {job_id} unknown")
        return self.jobs[job_id]

    async def session_secret(self, job_id: str) -> str | None:
        self._call("session_secret", job_id)
        record = self.jobs.get(job_id)
        return self.secrets.get(job_id) if record is not None and record.active else None

    async def changes(self, job_id: str, *, keepalive: float | None = None) -> AsyncGenerator[JobRecord | None, None]:
        """The stored record once (the in-memory service pushes no later changes)."""
        yield await self.get(job_id)

    async def wait_for(self, job_id: str, state: JobState, timeout: float) -> JobRecord:
        self._call("wait_for", job_id, state, timeout)
        return await self.get(job_id)

    async def list_active(self) -> list[str]:
        self._call("list_active")
        return [job_id for job_id, record in self.jobs.items() if record.active]

    async def check_user(self, username: str) -> bool:
        self._call("check_user", username)
        return username in self.users


def make_settings(password: str = PASSWORD) -> Settings:
    # model_construct: these tests must not pick up RUNNER_* variables from the environment.
    return Settings.model_construct(api=ApiSettings(user=USER, password=SecretStr(password)))


def make_app(service: FakeJobService | Jobs, templates: Path = EXAMPLE_TEMPLATES, password: str = PASSWORD) -> FastAPI:
    return create_app(service, TemplateStore(templates), make_settings(password))


def client_for(app: FastAPI, *, auth: bool = True) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runner.test", headers=AUTH if auth else None
    )


class NoIO:
    """Stands for etcd, Slurm and the cluster's user lookup: any use of it is I/O, recorded and failing."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.touched.append(name)
        raise AssertionError(f"the request reached I/O ({name})")


def jobs_without_io(io: NoIO) -> Jobs:
    """The real job service over the example templates, whose etcd, Slurm and user lookup are ``io``: the
    checks it makes before any I/O are the real ones."""
    users = ClusterUsers(cast(Any, io), min_uid=1000, runner_accounts=["runner"])
    return Jobs(cast(Any, io), cast(Any, io), TemplateStore(EXAMPLE_TEMPLATES), "/home", users=users)
