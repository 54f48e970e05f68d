"""A job's life through the runner on the simulated cluster: submit, watch, cancel, finish; all state in etcd."""

from __future__ import annotations

import httpx
import pytest

from runner.app import Runner
from simulator import SimCluster
from simulator.testing import wait_for
from tests.integration.jobs_support import submit, wait_state
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_submit_runs_the_job_as_the_user_and_reports_slurm_details(
    api: httpx.AsyncClient, sim_cluster: SimCluster
) -> None:
    job_id = await submit(api)
    body = await wait_state(api, job_id, "running")
    assert body["job-id"] == job_id
    assert body["uid"] == "alice"
    assert body["batch-script"] == {"template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "600"}}
    assert body["services"] == []
    details = body["details"]
    assert isinstance(details, dict)
    assert details["slurm-state"] == "RUNNING"
    assert details["node-list"].startswith("sim-c")
    slurm_id = details["slurm-job-id"]
    sbatch = [r for r in sim_cluster.command_log if "sbatch" in r.argv]
    assert len(sbatch) == 1
    assert sbatch[0].user == "alice"  # ran through sudo -n -u alice
    assert sim_cluster.job(int(slurm_id)).name == f"bwvisu-{job_id}"
    assert (await api.get("/jobs")).json() == {"jobs": [job_id]}


async def test_cancel_completes_then_finishes_with_slurms_end_state(api: httpx.AsyncClient) -> None:
    job_id = await submit(api)
    await wait_state(api, job_id, "running")
    response = await api.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"response": "job cancelled"}
    body = await wait_state(api, job_id, "finished")
    details = body["details"]
    assert isinstance(details, dict)
    assert details["slurm-state"] == "CANCELLED"
    assert (await api.get("/jobs")).json() == {"jobs": []}
    again = await api.delete(f"/jobs/{job_id}")
    assert again.status_code == 404
    assert again.json()["response"] == "no such running job"


async def test_a_real_script_runs_in_the_users_home_with_bwvisu_log(
    api: httpx.AsyncClient, sim_cluster: SimCluster
) -> None:
    job_id = await submit(api, "script.txt", label="hello", seconds="0")
    body = await wait_state(api, job_id, "finished")
    details = body["details"]
    assert isinstance(details, dict)
    assert details["slurm-state"] == "COMPLETED"
    assert details["exit-code"] == "0:0"
    log = sim_cluster.home_prefix / "alice" / f"bwvisu-job-{details['slurm-job-id']}.out"
    assert log.read_text().startswith(f"running as alice in {sim_cluster.home_prefix}/alice for hello")


async def test_sbatch_refusal_is_reported_and_the_job_is_finished(api: httpx.AsyncClient) -> None:
    response = await api.post("/jobs", json={"uid": "alice", "template-name": "bad_partition.txt", "variables": {}})
    assert response.status_code == 502
    assert "Invalid partition name specified" in response.json()["response"]
    assert (await api.get("/jobs")).json() == {"jobs": []}


async def test_queued_job_is_submitted_until_resources_free(api: httpx.AsyncClient, sim_cluster: SimCluster) -> None:
    sim_cluster.pause_scheduling()
    job_id = await submit(api)
    body = await wait_state(api, job_id, "submitted")
    details = body["details"]
    assert isinstance(details, dict)
    await wait_until(lambda: _has_state(api, job_id, "PENDING"), 30, "squeue never reported PENDING")
    sim_cluster.resume_scheduling()
    await wait_state(api, job_id, "running")


async def _has_state(api: httpx.AsyncClient, job_id: str, slurm_state: str) -> bool:
    body = (await api.get(f"/jobs/{job_id}")).json()
    return bool(body["details"].get("slurm-state") == slurm_state)


async def test_check_user(api: httpx.AsyncClient) -> None:
    ok = await api.get("/cluster/check-user/alice")
    assert (ok.status_code, ok.json()) == (200, {"response": "success"})
    missing = await api.get("/cluster/check-user/mallory")
    assert missing.status_code == 404


async def test_unknown_job(api: httpx.AsyncClient) -> None:
    response = await api.get("/jobs/0123456789abcdef")
    assert response.status_code == 404
    assert response.json()["response"] == "no such job"


async def test_one_ssh_connection_per_command_node_is_reused(api: httpx.AsyncClient, runner: Runner) -> None:
    for _ in range(5):
        await submit(api)
    connects = [getattr(r, "connects", None) for r in runner.nodes.runners]
    assert connects[0] == 1
    _ = wait_for
