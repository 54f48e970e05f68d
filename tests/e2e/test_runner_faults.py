"""The runner on a bigger real cluster: forwards spread over three gateways, and faults of real parts.

One testbed for the module (2 compute, 3 gateways, 2 command nodes, 3 etcd members, a client). The tests
run in file order and the later ones stop parts of the cluster for good: a runner restarted mid-flight,
an etcd member, a command node, a gateway.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from containers.etcd_members import ETCD_PREFIX
from containers.testbed import Testbed, TestbedSpec
from runner.app import Runner
from runner.config import Settings, settings_from_mapping
from tests.e2e.e2e_support import API_AUTH, TEMPLATES, runner_settings
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WEBAPP = {"expected_runtime_in_minutes": "30", "number_of_nodes": "1", "tasks_per_node": "1"}
# Each URL is a session link from the API (password in the query): the application answers with a cookie and
# a redirect, so each is opened as a browser would, with its own cookie jar.
FETCH_ALL = """
import http.cookiejar, json, sys, urllib.request
out = {}
for url in json.loads(sys.argv[1]):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        with opener.open(url, timeout=10) as response:
            out[url] = response.read().decode()
    except OSError as exc:
        out[url] = "ERROR %s" % exc
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def big_testbed(docker_engine: None) -> Iterator[Testbed]:
    with Testbed(TestbedSpec(compute=2, gateways=3, command=2, etcd_members=3, client=True)) as bed:
        yield bed


@asynccontextmanager
async def runner_api(
    testbed: Testbed, prefix: str, settings: Settings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings or settings_from_mapping(runner_settings(testbed, prefix, TEMPLATES))
    async with (
        Runner(settings) as started,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=started.app), base_url="http://runner", auth=API_AUTH, timeout=60
        ) as api,
    ):
        yield api


async def submit(api: httpx.AsyncClient) -> str:
    response = await api.post(
        "/jobs", json={"uid": "alice", "template-name": "template_webapp.txt", "variables": WEBAPP}
    )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job-id"]
    return job_id


async def wait_available(api: httpx.AsyncClient, job_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    bodies: dict[str, dict[str, Any]] = {}

    async def all_available() -> bool:
        for job_id in job_ids:
            if bodies.get(job_id, {}).get("state") != "available":
                bodies[job_id] = (await api.get(f"/jobs/{job_id}")).json()
        return all(b["state"] == "available" for b in bodies.values())

    await wait_until(all_available, timeout, f"not all of {len(job_ids)} jobs became available")
    return bodies


def fetch_all(testbed: Testbed, urls: list[str]) -> dict[str, str]:
    result = testbed.node("client").exec(["python3", "-c", FETCH_ALL, json.dumps(urls)], user="alice")
    assert result.ok, result.stderr
    answers: dict[str, str] = json.loads(result.stdout)
    return answers


def service_url(body: dict[str, Any]) -> str:
    [service] = body["services"]
    url: str = service["url"]
    assert url == f"http://{service['external-ip']}:{service['external-port']}/?password={service['password']}"
    return url


async def check_reachable(testbed: Testbed, bodies: dict[str, dict[str, Any]]) -> Counter[str]:
    """Every job answers through its own forward; returns forwards per gateway public address."""
    urls = [service_url(b) for b in bodies.values()]
    answers = await asyncio.to_thread(fetch_all, testbed, urls)
    for url in urls:
        assert answers[url].startswith("bwvisu webapp on compute"), (url, answers[url])
    return Counter(b["services"][0]["external-ip"] for b in bodies.values())


async def cancel_all(api: httpx.AsyncClient, job_ids: list[str]) -> None:
    for job_id in job_ids:
        assert (await api.delete(f"/jobs/{job_id}")).status_code == 200

    async def all_finished() -> bool:
        states = [(await api.get(f"/jobs/{j}")).json()["state"] for j in job_ids]
        return all(s == "finished" for s in states)

    await wait_until(all_finished, 120, "cancelled jobs did not finish")


def stop(testbed: Testbed, hostname: str) -> None:
    testbed.node(hostname).container.get_wrapped_container().stop(timeout=2)


async def test_thirty_jobs_spread_evenly_over_three_gateways(big_testbed: Testbed) -> None:
    async with runner_api(big_testbed, f"{ETCD_PREFIX}/e2e-{big_testbed.run_id}-spread") as api:
        t0 = asyncio.get_running_loop().time()
        job_ids = [await submit(api) for _ in range(30)]
        bodies = await wait_available(api, job_ids, 240)
        print(f"30 jobs available in {asyncio.get_running_loop().time() - t0:.1f} s")
        counts = await check_reachable(big_testbed, bodies)
        print(f"forwards per gateway: {dict(sorted(counts.items()))}")
        assert set(counts) == {g.public_ip for g in big_testbed.endpoints.gateways}
        # Least-loaded placement counts each choice at once, so 30 concurrent requests spread 10/10/10.
        assert max(counts.values()) - min(counts.values()) <= 1
        await cancel_all(api, job_ids)


async def test_runner_restarted_mid_flight_loses_nothing(big_testbed: Testbed) -> None:
    prefix = f"{ETCD_PREFIX}/e2e-{big_testbed.run_id}-restart"
    # Same configuration both times: the job's script holds the keyhole address it was submitted with.
    settings = settings_from_mapping(runner_settings(big_testbed, prefix, TEMPLATES))
    async with runner_api(big_testbed, prefix, settings) as api:
        job_id = await submit(api)
    # The first runner is gone before the job asked for its port; a new one takes over from etcd.
    async with runner_api(big_testbed, prefix, settings) as api:
        bodies = await wait_available(api, [job_id], 120)
        await check_reachable(big_testbed, bodies)
        await cancel_all(api, [job_id])


async def test_api_keeps_serving_with_one_of_three_etcd_members_down(big_testbed: Testbed) -> None:
    stop(big_testbed, "etcd1")
    async with runner_api(big_testbed, f"{ETCD_PREFIX}/e2e-{big_testbed.run_id}-etcd") as api:
        job_id = await submit(api)
        bodies = await wait_available(api, [job_id], 120)
        await check_reachable(big_testbed, bodies)
        assert job_id in (await api.get("/jobs")).json()["jobs"]
        await cancel_all(api, [job_id])


async def test_command_node_down_fails_over_to_the_other(big_testbed: Testbed) -> None:
    stop(big_testbed, "command1")
    async with runner_api(big_testbed, f"{ETCD_PREFIX}/e2e-{big_testbed.run_id}-command") as api:
        job_id = await submit(api)
        bodies = await wait_available(api, [job_id], 120)
        await check_reachable(big_testbed, bodies)
        await cancel_all(api, [job_id])


async def test_gateway_down_new_forwards_go_elsewhere(big_testbed: Testbed) -> None:
    down = big_testbed.endpoints.gateways[0]
    stop(big_testbed, down.hostname)
    async with runner_api(big_testbed, f"{ETCD_PREFIX}/e2e-{big_testbed.run_id}-gateway") as api:
        job_ids = [await submit(api) for _ in range(4)]
        bodies = await wait_available(api, job_ids, 180)
        counts = await check_reachable(big_testbed, bodies)
        print(f"forwards per gateway with {down.hostname} down: {dict(sorted(counts.items()))}")
        assert down.public_ip not in counts
        assert sum(counts.values()) == 4
        await cancel_all(api, job_ids)
