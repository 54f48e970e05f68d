"""Attacks on who a job runs as: root, system accounts, the overflow account and the runner's own account.

The frontend is trusted to speak for its users, but a wrong or forged ``uid`` must never make the runner's
``sudo`` rights act for an account that is not an ordinary cluster user. Each refusal is a 422 naming the rule,
nothing reaches ``sbatch``, no Slurm job and no record exist afterwards; ``check-user`` answers 404 for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import ApiSettings, Settings
from runner.web.server import ApiServer
from simulator import SimCluster
from tests.integration.conftest import API_AUTH, api_client
from tests.integration.jobs_support import wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ORDINARY_ONLY = "jobs run only as ordinary users"
SYSTEM_ACCOUNTS = {
    "root": f"uid: 'root' is the superuser (uid 0); {ORDINARY_ONLY}",
    "daemon": f"uid: 'daemon' is a system account (uid 1 < min-uid 1000); {ORDINARY_ONLY}",
    "nobody": f"uid: 'nobody' is the overflow account (uid 65534); {ORDINARY_ONLY}",
    # Slurm trusts its own account with every job: acting as it would cancel anyone's
    "slurm": f"uid: 'slurm' is a system account (uid 64030 > max-uid 59999); {ORDINARY_ONLY}",
}


def body(uid: str) -> dict[str, object]:
    return {"uid": uid, "template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "600"}}


def getent_passwd_calls(cluster: SimCluster) -> list[str]:
    command_nodes = {e.node for e in cluster.command_nodes}
    return [
        r.argv[2]
        for r in cluster.command_log
        if r.node in command_nodes and r.name == "getent" and r.argv[1:2] == ("passwd",)
    ]


def sbatch_calls(cluster: SimCluster) -> int:
    return sum(1 for r in cluster.command_log if "sbatch" in r.argv)


async def stored_keys(runner: Runner) -> list[bytes]:
    """Job records and tokens in etcd (the leader lease and other keys are not the API's doing)."""
    assert runner.etcd is not None
    prefix = runner.settings.etcd_prefix
    keys: list[bytes] = []
    for kind in ("jobs", "tokens"):
        keys += [kv.key for kv in await runner.etcd.get_prefix(f"{prefix}/{kind}/".encode(), keys_only=True)]
    return keys


def expected_refusals(cluster: SimCluster) -> dict[str, str]:
    own = cluster.config.service_user
    return {**SYSTEM_ACCOUNTS, own: f"uid: {own!r} is the runner's own account; {ORDINARY_ONLY}"}


@pytest.mark.parametrize("who", ["root", "daemon", "slurm", "nobody", "runner-account"])
async def test_submitting_as_an_account_that_is_not_an_ordinary_user_is_refused_and_changes_nothing(
    sim_cluster: SimCluster, runner: Runner, api: httpx.AsyncClient, who: str
) -> None:
    uid = sim_cluster.config.service_user if who == "runner-account" else who
    assert sim_cluster.users.get(uid) is not None  # the attack is on a real account of the cluster
    response = await api.post("/jobs", json=body(uid))
    assert response.status_code == 422, response.text
    assert response.json() == {"response": expected_refusals(sim_cluster)[uid], "error": "refused-user"}
    assert sbatch_calls(sim_cluster) == 0
    assert sim_cluster.scheduler.jobs == {}
    assert await stored_keys(runner) == []
    assert (await api.get("/jobs")).json() == {"jobs": []}
    if who == "runner-account":
        assert getent_passwd_calls(sim_cluster) == []  # refused from the configuration alone


@pytest.mark.parametrize("who", ["root", "daemon", "slurm", "nobody", "runner-account", "unknown"])
async def test_check_user_answers_404_for_accounts_the_runner_will_not_act_for(
    sim_cluster: SimCluster, api: httpx.AsyncClient, who: str
) -> None:
    name = {"runner-account": sim_cluster.config.service_user, "unknown": "mallory"}.get(who, who)
    response = await api.get(f"/cluster/check-user/{name}")
    assert (response.status_code, response.json()) == (404, {"response": "no such user", "error": "no-such-user"})
    if who == "runner-account":
        assert getent_passwd_calls(sim_cluster) == []


async def test_submitting_for_an_unknown_user_is_refused_before_sbatch(
    sim_cluster: SimCluster, runner: Runner, api: httpx.AsyncClient
) -> None:
    response = await api.post("/jobs", json=body("mallory"))
    assert response.status_code == 422, response.text
    assert response.json() == {"response": "uid: 'mallory': no such user on the cluster", "error": "unknown-user"}
    assert getent_passwd_calls(sim_cluster) == ["mallory"]
    assert sbatch_calls(sim_cluster) == 0
    assert await stored_keys(runner) == []


async def test_an_ordinary_user_still_works(sim_cluster: SimCluster, api: httpx.AsyncClient) -> None:
    assert (await api.get("/cluster/check-user/alice")).json() == {"response": "success"}
    response = await api.post("/jobs", json=body("alice"))
    assert response.status_code == 200, response.text
    await wait_state(api, response.json()["job-id"], "running")
    [job] = sim_cluster.scheduler.jobs.values()
    assert job.spec.user == "alice"


async def test_min_uid_comes_from_the_settings(sim_cluster: SimCluster, make_settings: Callable[..., Settings]) -> None:
    alice, bob = (sim_cluster.users.get(n) for n in ("alice", "bob"))
    assert alice is not None
    assert bob is not None
    async with Runner(make_settings(min_uid=bob.uid)) as runner, api_client(runner) as api:
        refused = await api.post("/jobs", json=body("alice"))
        accepted = await api.post("/jobs", json=body("bob"))
        checked = await api.get("/cluster/check-user/alice")
    assert refused.status_code == 422
    assert refused.json()["response"] == (
        f"uid: 'alice' is a system account (uid {alice.uid} < min-uid {bob.uid}); {ORDINARY_ONLY}"
    )
    assert accepted.status_code == 200, accepted.text
    assert checked.status_code == 404
    assert [j.spec.user for j in sim_cluster.scheduler.jobs.values()] == ["bob"]


async def test_a_burst_of_submissions_for_one_user_costs_one_getent(
    sim_cluster: SimCluster, api: httpx.AsyncClient
) -> None:
    responses = await asyncio.gather(*(api.post("/jobs", json=body("alice")) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert getent_passwd_calls(sim_cluster) == ["alice"]
    assert sbatch_calls(sim_cluster) == 20


async def test_refusals_over_a_real_http_socket(sim_cluster: SimCluster, runner: Runner) -> None:
    own = sim_cluster.config.service_user
    async with (
        ApiServer(runner.app, ApiSettings(host="127.0.0.1", port=0)) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=30) as client,
    ):
        as_root = await client.post("/jobs", json=body("root"))
        as_runner = await client.post("/jobs", json=body(own))
        check_root = await client.get("/cluster/check-user/root")
        check_alice = await client.get("/cluster/check-user/alice")
    assert (as_root.status_code, as_root.json()["response"]) == (422, SYSTEM_ACCOUNTS["root"])
    assert as_runner.status_code == 422
    assert as_runner.json()["response"] == f"uid: {own!r} is the runner's own account; {ORDINARY_ONLY}"
    assert check_root.status_code == 404
    assert (check_alice.status_code, check_alice.json()) == (200, {"response": "success"})
    assert sbatch_calls(sim_cluster) == 0
