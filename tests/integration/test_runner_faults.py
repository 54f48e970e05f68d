"""Faults on the simulated cluster: no job lost, none submitted twice, nothing hostile reaches a shell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from simulator import SimCluster
from tests.hostile_inputs import HOSTILE_RAW_BODIES, HOSTILE_SUBMISSIONS, HUGE_VALUE_SUBMISSION, Hostile
from tests.integration.conftest import api_client
from tests.integration.jobs_support import submit, wait_state
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RUNNER_TEMPLATES = Path(__file__).parents[2] / "runner" / "templates"


def sbatch_calls(cluster: SimCluster) -> int:
    return sum(1 for r in cluster.command_log if "sbatch" in r.argv)


async def test_command_node_down_fails_over(
    sim_command_node_down: SimCluster, api: httpx.AsyncClient, runner: Runner
) -> None:
    cluster = sim_command_node_down
    job_id = await submit(api)
    await wait_state(api, job_id, "running")
    nodes = {r.node for r in cluster.command_log if "sbatch" in r.argv}
    assert nodes == {cluster.command_nodes[1].node}
    assert sbatch_calls(cluster) == 1


async def test_down_node_is_used_again_once_back(
    sim_cluster: SimCluster, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(ssh={**make_settings().ssh.model_dump(mode="json"), "down_retry_after": 0.2})
    first = sim_cluster.command_nodes[0].node
    await sim_cluster.node_down(first)
    async with Runner(settings) as runner, api_client(runner) as api:
        await submit(api)
        await sim_cluster.node_up(first)

        async def first_used_again() -> bool:
            await submit(api)
            return any(r.node == first and "sbatch" in r.argv for r in sim_cluster.command_log)

        await wait_until(first_used_again, 30, "the recovered command node was never used again")


async def test_controller_unresponsive_keeps_state_and_says_unknown(
    sim_cluster: SimCluster, api: httpx.AsyncClient
) -> None:
    job_id = await submit(api)
    await wait_state(api, job_id, "running")
    sim_cluster.controller_up = False

    async def unknown() -> bool:
        body = (await api.get(f"/jobs/{job_id}")).json()
        return bool(body["details"].get("scheduler-state", "").startswith("unknown"))

    await wait_until(unknown, 30, "details never said the scheduler state is unknown")
    body = (await api.get(f"/jobs/{job_id}")).json()
    assert body["state"] == "running"
    assert (await api.get("/jobs")).json() == {"jobs": [job_id]}
    submit_response = await api.post(
        "/jobs", json={"uid": "alice", "template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "9"}}
    )
    assert submit_response.status_code == 503
    sim_cluster.controller_up = True

    async def known() -> bool:
        return "scheduler-state" not in (await api.get(f"/jobs/{job_id}")).json()["details"]

    await wait_until(known, 30, "the unknown note never went away")
    assert (await api.get(f"/jobs/{job_id}")).json()["state"] == "running"


@pytest.mark.parametrize("sbatch_ran", [True, False], ids=["after-sbatch-ran", "before-sbatch-ran"])
async def test_connection_dropped_mid_submit_submits_exactly_once(
    sim_cluster: SimCluster, api: httpx.AsyncClient, sbatch_ran: bool
) -> None:
    # The connection is cut after sbatch read the script: if it ran, the runner must find the job by name;
    # if not, it submits once on another node.
    sim_cluster.faults.drop_connection("sbatch", execute=sbatch_ran)
    job_id = await submit(api)
    await wait_state(api, job_id, "running")
    jobs = [j for j in sim_cluster.scheduler.jobs.values() if j.name == f"bwvisu-{job_id}"]
    assert len(jobs) == 1


async def test_sbatch_indeterminate_twice_answers_503_and_the_watcher_finds_the_job(
    sim_cluster: SimCluster, make_settings: Callable[..., Settings]
) -> None:
    # the first sbatch is cut before it ran (the lookup by name finds nothing), the second after it ran: whether
    # Slurm took the job is not known when the frontend is answered, so it gets a 503 with a stable code and no
    # internal text; the record stays, and the watcher finds the job by its name
    first = sim_cluster.faults.calls["sbatch"] + 1
    sim_cluster.faults.drop_connection("sbatch", at_call=first, execute=False)
    sim_cluster.faults.drop_connection("sbatch", at_call=first + 1, execute=True)
    # both command nodes are marked down by the cut connections: tried again soon; a short submission grace
    ssh = {**make_settings().ssh.model_dump(mode="json"), "down_retry_after": 0.2, "command_timeout": 2}
    async with Runner(make_settings(ssh=ssh)) as runner, api_client(runner) as api:
        response = await api.post(
            "/jobs",
            json={"uid": "alice", "template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "9"}},
        )
        assert response.status_code == 503, response.text
        assert response.json() == {
            "response": "the scheduler did not confirm the submission; the job is listed if it was accepted",
            "error": "submission-indeterminate",
        }
        (job_id,) = (await api.get("/jobs")).json()["jobs"]

        details: dict[str, str] = {}

        async def adopted() -> bool:
            details.update((await api.get(f"/jobs/{job_id}")).json()["details"])
            return "slurm-job-id" in details

        await wait_until(adopted, 60, "the watcher never found the job by its name")
    (sim_job,) = [j for j in sim_cluster.scheduler.jobs.values() if j.name == f"bwvisu-{job_id}"]
    assert details["slurm-job-id"] == str(sim_job.job_id)


@pytest.fixture
async def runner_with_examples(make_settings: Callable[..., Settings]) -> Runner:
    return Runner(make_settings(templates_dir=str(RUNNER_TEMPLATES)))


@pytest.mark.parametrize("case", HOSTILE_SUBMISSIONS, ids=lambda c: c.label)
async def test_hostile_submissions_never_reach_the_cluster(
    case: Hostile, sim_cluster: SimCluster, runner_with_examples: Runner
) -> None:
    async with runner_with_examples as runner, api_client(runner) as api:
        response = await api.post("/jobs", json=case.body)
        assert 400 <= response.status_code < 500, response.text
        assert case.field in response.text
        assert sbatch_calls(sim_cluster) == 0
        assert all(r.stdin_size == 0 for r in sim_cluster.command_log)


async def test_raw_and_huge_bodies_never_reach_the_cluster(
    sim_cluster: SimCluster, runner_with_examples: Runner
) -> None:
    async with runner_with_examples as runner, api_client(runner) as api:
        for raw in HOSTILE_RAW_BODIES.values():
            response = await api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500
        huge = await api.post("/jobs", json=HUGE_VALUE_SUBMISSION)
        assert huge.status_code == 413
        assert sbatch_calls(sim_cluster) == 0


async def test_unknown_host_key_is_refused_and_nothing_runs(
    sim_cluster: SimCluster, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # known_hosts that names the command nodes with a key they do not have (a gateway's key, re-labelled)
    lines = sim_cluster.known_hosts_path.read_text().splitlines()
    gateway = sim_cluster.gateway_nodes[0].node
    foreign_key = next(line.split(maxsplit=1)[1] for line in lines if line.startswith(f"[{gateway}]:"))
    hosts = [f"[{n.host}]:{n.port}" for n in sim_cluster.command_nodes]
    wrong = tmp_path / "known_hosts"
    wrong.write_text("".join(f"{host} {foreign_key}\n" for host in hosts))
    ssh = {**make_settings().ssh.model_dump(mode="json"), "known_hosts": str(wrong)}
    async with Runner(make_settings(ssh=ssh)) as runner, api_client(runner) as api:
        response = await api.post(
            "/jobs", json={"uid": "alice", "template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "9"}}
        )
        assert response.status_code == 503
    assert len(sim_cluster.command_log) == 0
