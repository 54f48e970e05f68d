"""The Slurm id is saved after ``sbatch`` off the request's path (runner.state.StateStore.update_later): this
runner reads it back at once, a cancel meanwhile reaches Slurm, and a crash before it is stored loses nothing
(the watcher finds the job by its Slurm name)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.records import Change, JobRecord
from runner.state import StateStore
from simulator import SimCluster
from tests.integration.conftest import api_client
from tests.integration.jobs_support import submit
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def hold_later_writes(store: StateStore) -> asyncio.Event:
    """The store's later writes wait for the returned event; every other write goes through."""
    release = asyncio.Event()
    original = store.update_jobs

    async def update_jobs(changes: list[tuple[JobRecord, int, Change]], *, pending: bool = True) -> int:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "state-later-writes":
            await release.wait()
        return await original(changes, pending=pending)

    store.update_jobs = update_jobs  # type: ignore[method-assign]
    return release


def slurm_job_of(cluster: SimCluster, job_id: str) -> int:
    (job,) = [j for j in cluster.scheduler.jobs.values() if j.name == f"bwvisu-{job_id}"]
    return job.job_id


async def test_before_the_id_is_stored_the_runner_shows_it_and_a_cancel_reaches_slurm(
    sim_cluster: SimCluster, runner: Runner, api: httpx.AsyncClient
) -> None:
    release = hold_later_writes(runner.store)
    job_id = await submit(api)
    slurm_id = slurm_job_of(sim_cluster, job_id)
    elsewhere = await StateStore(runner.store.client, runner.store.prefix).get_job(job_id)
    assert elsewhere is not None
    assert elsewhere.slurm_id is None, "the id should not be stored yet"
    body = (await api.get(f"/jobs/{job_id}")).json()
    assert body["details"]["slurm-job-id"] == str(slurm_id)
    assert (await api.delete(f"/jobs/{job_id}")).json() == {"response": "job cancelled"}

    async def cancelled() -> bool:
        return sim_cluster.scheduler.jobs[slurm_id].state.value == "CANCELLED"

    await wait_until(cancelled, 20, "scancel never reached the Slurm job")
    release.set()
    await runner.store.close()
    stored = await StateStore(runner.store.client, runner.store.prefix).get_job(job_id)
    assert stored is not None
    assert stored.slurm_id == str(slurm_id)
    assert stored.cancel_requested


async def test_a_crash_before_the_id_is_stored_loses_nothing(
    sim_cluster: SimCluster, make_settings: Callable[..., Settings]
) -> None:
    # the first runner dies between sbatch and saving the Slurm id: its later write never happens
    ssh = {**make_settings().ssh.model_dump(mode="json"), "command_timeout": 1}  # grace for interrupted: 3 s
    async with Runner(make_settings(ssh=ssh)) as first, api_client(first) as api:
        first.store.update_later = lambda record, revision, change: None  # type: ignore[method-assign]
        job_id = await submit(api)
        slurm_id = slurm_job_of(sim_cluster, job_id)
    async with Runner(make_settings(ssh=ssh)) as second, api_client(second) as api:
        details: dict[str, str] = {}

        async def adopted() -> bool:
            details.update((await api.get(f"/jobs/{job_id}")).json()["details"])
            return "slurm-job-id" in details

        await wait_until(adopted, 30, "the watcher never found the job by its name")
        assert details["slurm-job-id"] == str(slurm_id)
        assert (await api.get("/jobs")).json()["jobs"] == [job_id]
    assert slurm_job_of(sim_cluster, job_id) == slurm_id  # exactly one Slurm job: never submitted again
