"""Per-user quotas (``max-jobs-per-user``): a submission over the limit is 429 naming the limit; a finished or
cancelled job frees its place; the limit holds across runner processes because the place is taken in the same
etcd transaction as the record is created (tested with two real ``runner serve`` processes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aetcd
import httpx
import pytest

from runner.errors import TooManyJobs
from runner.records import JobRecord, JobState
from runner.state import StateStore
from simulator import SimCluster
from simulator.etcd import EtcdServer
from tests.integration.conftest import API_AUTH, runner_config
from tests.integration.runner_process import RunnerProcess

pytestmark = pytest.mark.integration

WEBAPP = {
    "uid": "alice",
    "template-name": "template_webapp.txt",
    "variables": {"expected_runtime_in_minutes": "15", "number_of_nodes": "1", "tasks_per_node": "1"},
}


def _record(n: int, uid: str = "alice") -> JobRecord:
    return JobRecord(job_id=f"job{n:04d}", uid=uid, template_name="t.txt", variables={})


async def test_the_limit_refuses_the_next_job_and_names_the_limit(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    await store.create_job(_record(1), "tok", max_active=2)
    await store.create_job(_record(2), "tok", max_active=2)
    with pytest.raises(TooManyJobs) as caught:
        await store.create_job(_record(3), "tok", max_active=2)
    assert caught.value.status == 429
    assert "alice" in caught.value.public
    assert "at most 2" in caught.value.public
    assert await store.get_job("job0003") is None  # nothing of the refused job is stored
    # another user has places of their own
    await store.create_job(_record(4, uid="bob"), "tok", max_active=2)


async def test_a_finished_job_and_a_cancelled_one_free_their_places(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    store = StateStore(etcd_client, etcd_prefix)
    for n in (1, 2):
        await store.create_job(_record(n), "tok", max_active=2)

    def finished(record: JobRecord) -> JobRecord:
        record.state = JobState.FINISHED
        return record

    def cancel_requested(record: JobRecord) -> JobRecord:
        record.cancel_requested = True
        record.state = JobState.COMPLETING
        return record

    await store.update_job("job0001", finished)
    await store.create_job(_record(3), "tok", max_active=2)
    await store.update_job("job0002", cancel_requested)
    await store.create_job(_record(4), "tok", max_active=2)
    # the cancelled job ending later frees nothing more: its place is already someone else's
    await store.update_job("job0002", finished)
    with pytest.raises(TooManyJobs):
        await store.create_job(_record(5), "tok", max_active=2)


async def test_concurrent_submissions_through_two_stores_take_exactly_the_limit(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    clients = [aetcd.Client(host=etcd_server.host, port=etcd_server.port) for _ in range(2)]
    for client in clients:
        await client.connect()
    try:
        stores = [StateStore(client, etcd_prefix) for client in clients]
        outcomes = await asyncio.gather(
            *(stores[n % 2].create_job(_record(n), "tok", max_active=3) for n in range(50)), return_exceptions=True
        )
    finally:
        for client in clients:
            await client.close()
    assert sum(isinstance(o, int) for o in outcomes) == 3
    assert sum(isinstance(o, TooManyJobs) for o in outcomes) == 47


def _serve_config(tmp_path: Path, name: str, cluster: SimCluster, etcd: EtcdServer, prefix: str) -> Path:
    data: dict[str, Any] = runner_config(cluster, etcd, prefix)
    data["api"] = {"host": "127.0.0.1", "port": 0, "user": API_AUTH[0], "password": API_AUTH[1]}
    data["templates_dir"] = str(Path(__file__).parents[2] / "runner" / "templates")
    data["max-jobs-per-user"] = 3
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


async def test_two_runner_processes_accept_exactly_the_limit_of_fifty_submissions(
    tmp_path: Path, sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    configs = [_serve_config(tmp_path, name, sim_cluster, etcd_server, etcd_prefix) for name in ("a", "b")]
    with (
        RunnerProcess("serve", "--config", str(configs[0])) as first,
        RunnerProcess("serve", "--config", str(configs[1])) as second,
    ):
        urls = [first.url(), second.url()]
        limits = httpx.Limits(max_connections=50)
        async with (
            httpx.AsyncClient(base_url=urls[0], auth=API_AUTH, timeout=60, trust_env=False, limits=limits) as a,
            httpx.AsyncClient(base_url=urls[1], auth=API_AUTH, timeout=60, trust_env=False, limits=limits) as b,
        ):
            answers = await asyncio.gather(*((a, b)[n % 2].post("/jobs", json=WEBAPP) for n in range(50)))
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200] * 3 + [429] * 47, [r.text for r in answers if r.status_code not in (200, 429)]
            refusal = next(r.json() for r in answers if r.status_code == 429)
            assert refusal["error"] == "too-many-jobs"
            assert "at most 3" in refusal["response"]
            # a cancelled job frees its place at once
            job = next(r.json()["job-id"] for r in answers if r.status_code == 200)
            cancelled = await a.delete(f"/jobs/{job}")
            assert cancelled.status_code == 200, cancelled.text
            again = await b.post("/jobs", json=WEBAPP)
            assert again.status_code == 200, again.text
            assert (await a.post("/jobs", json=WEBAPP)).status_code == 429
