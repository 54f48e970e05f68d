"""Refused keyhole requests forward nothing: forged, replayed, second, too many ports, unknown or ended job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.keyhole.client import parse_answer
from runner.records import JobState
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, all_rules, seen_running, watcher_settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "t" * 32


@pytest.fixture
async def keyhole(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Runner, httpx.AsyncClient]]:
    # these records have no Slurm job behind them
    async with Runner(make_settings(keyholed_max_forwarders_per_job=2, **QUIET_WATCHER)) as started:
        assert started.keyhole.server is not None
        await watcher_settled(started)
        async with httpx.AsyncClient(base_url=started.keyhole.server.url, timeout=15, trust_env=False) as client:
            yield started, client


async def running_job(started: Runner, job_id: str, host: str, state: JobState = JobState.RUNNING) -> None:
    record = seen_running(job_id, host)
    record.state = state
    await started.store.create_job(record, TOKEN)


def body(job_id: str, host: str, *, ports: int = 1, token: str = TOKEN, **kw: object) -> bytes:
    timestamp = kw.pop("timestamp", int(time.time()))
    assert isinstance(timestamp, int)
    nonce = kw.pop("nonce", None)
    assert nonce is None or isinstance(nonce, str)
    return protocol.build_request(
        job_id=job_id, hostnames=[host], ports=ports, token=token, timestamp=timestamp, nonce=nonce
    )


async def post(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post(protocol.REQUEST_PATH, content=data, headers={"Content-Type": "application/json"})


async def nothing_forwarded(started: Runner, cluster: SimCluster, job_id: str) -> bool:
    rules = await all_rules(cluster)
    job = await started.store.get_job(job_id)
    return (
        not any(r.job_id == job_id for rs in rules.values() for r in rs)
        and not await started.keyhole.ports.of_job(job_id)
        and (job is None or not job.forwards)
    )


async def test_forged_signature_is_refused(keyhole: tuple[Runner, httpx.AsyncClient], sim_cluster: SimCluster) -> None:
    started, client = keyhole
    host = sim_cluster.compute_nodes[0].name
    await running_job(started, "j-forged", host)
    response = await post(client, body("j-forged", host, token="f" * 32))
    assert response.status_code == 403
    assert response.json()["error"] == "bad-signature"
    assert await nothing_forwarded(started, sim_cluster, "j-forged")
    assert "j-forged" not in await started.keyhole.claims.job_ids()  # not even the one-request claim is used up


async def test_unknown_and_ended_jobs_are_refused(
    keyhole: tuple[Runner, httpx.AsyncClient], sim_cluster: SimCluster
) -> None:
    started, client = keyhole
    host = sim_cluster.compute_nodes[0].name
    response = await post(client, body("j-nobody", host))
    assert response.status_code == 404
    await running_job(started, "j-ended", host)
    await started.store.update_job("j-ended", lambda r: r.model_copy(update={"state": JobState.FINISHED}))
    response = await post(client, body("j-ended", host))
    assert response.status_code == 404
    await running_job(started, "j-leaving", host, JobState.COMPLETING)
    response = await post(client, body("j-leaving", host))
    assert response.status_code == 409
    for job_id in ("j-nobody", "j-ended", "j-leaving"):
        assert await nothing_forwarded(started, sim_cluster, job_id)


async def test_too_many_ports_is_refused(keyhole: tuple[Runner, httpx.AsyncClient], sim_cluster: SimCluster) -> None:
    started, client = keyhole
    await running_job(started, "j-greedy", sim_cluster.compute_nodes[0].name)
    response = await post(client, body("j-greedy", sim_cluster.compute_nodes[0].name, ports=3))
    assert response.status_code == 422
    assert response.json()["error"] == "too-many-ports"
    assert await nothing_forwarded(started, sim_cluster, "j-greedy")


async def test_a_job_asks_once_a_retry_gets_the_same_answer_and_replays_are_refused(
    keyhole: tuple[Runner, httpx.AsyncClient], sim_cluster: SimCluster
) -> None:
    started, client = keyhole
    host = sim_cluster.compute_nodes[1].name
    await running_job(started, "j-once", host)
    first = body("j-once", host, ports=2)
    answer = await post(client, first)
    assert answer.status_code == 200, answer.text
    forwards = parse_answer(answer.content, 2)
    assert len({external for _, external, _ in forwards}) == 2

    retry = await post(client, first)  # identical signed bytes: the answer was lost, the client asks again
    assert retry.status_code == 200
    assert retry.json() == answer.json()

    second = await post(client, body("j-once", host, ports=1))
    assert second.status_code == 409
    assert second.json()["error"] == "already-asked"

    original = protocol.parse_request(first)
    replay = await post(client, body("j-once", host, ports=2, nonce=original.nonce, timestamp=original.timestamp - 7))
    assert replay.status_code == 409
    assert replay.json()["error"] == "replayed-request"

    stale = await post(client, body("j-once", host, ports=2, timestamp=int(time.time()) - 3600))
    assert stale.status_code == 403
    assert stale.json()["error"] == "stale-request"

    rules = [r for rs in (await all_rules(sim_cluster)).values() for r in rs if r.job_id == "j-once"]
    assert sorted(r.external_port for r in rules) == sorted(external for _, external, _ in forwards)
    assert len(await started.keyhole.ports.of_job("j-once")) == 2
