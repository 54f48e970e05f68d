"""A job's owner holds its token and can send any node list: forwards still go only to the job's own nodes.

Each attack is what the owner can do by hand with the token read back from Slurm: run the embedded client
with a forged ``SLURM_JOB_NODELIST`` (a command node, another job's node, an IP literal, ``localhost``) while the
job is queued and while it runs. Every one is refused with a clear message, leaves no rule on any gateway and
no reservation or claim behind, and the job's own later request still succeeds. Refusals slow the job down
(429 with a wait) in every runner replica, without Slurm or a gateway being asked anything meanwhile.
"""

from __future__ import annotations

import functools
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
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import QUIET_WATCHER, all_rules, submit, watcher_settled
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def started(make_settings: Callable[..., Settings]) -> AsyncIterator[Runner]:
    async with Runner(make_settings()) as runner:
        yield runner


async def job_with_token(started: Runner, template: str, nodes: int) -> tuple[str, str, str]:
    """Submit through the API; the runner job id, its Slurm id and its token (what the owner can read)."""
    async with api_client(started) as api:
        job_id = await submit(api, template, {"nodes": str(nodes)})
    record = await started.store.get_job(job_id)
    token = await started.store.get_token(job_id)
    assert record is not None
    assert record.slurm_id is not None
    assert token is not None
    return job_id, record.slurm_id, token


async def running_nodes(cluster: SimCluster, slurm_id: str) -> list[str]:
    job = cluster.scheduler.jobs[int(slurm_id)]

    async def running() -> bool:
        return job.state.value == "RUNNING"

    await wait_until(running, 20, f"Slurm job {slurm_id} never started")
    return list(job.nodes)


def signed(job_id: str, token: str, hosts: list[str], ports: int = 1) -> bytes:
    return protocol.build_request(job_id=job_id, hostnames=hosts, ports=ports, token=token, timestamp=int(time.time()))


async def ask(started: Runner, data: bytes) -> httpx.Response:
    """One request over TCP, as the client sends it; a 429 is waited out as the client does, except that the
    backoff's clock is moved on by the wait instead of sleeping through it."""
    assert started.keyhole.server is not None
    refusals = started.keyhole.service.refusals
    async with httpx.AsyncClient(base_url=started.keyhole.server.url, timeout=30, trust_env=False) as client:
        for _ in range(20):
            response = await client.post(protocol.REQUEST_PATH, content=data)
            if response.status_code != 429:
                return response
            wait = response.json()["retry-after"]
            assert int(response.headers["Retry-After"]) == wait >= 1
            refusals.clock = functools.partial(_later, refusals.clock, wait)
    raise AssertionError("still backing off after 20 waits")


def _later(clock: Callable[[], float], seconds: float) -> float:
    return clock() + seconds


async def nothing_placed(started: Runner, cluster: SimCluster, job_id: str) -> None:
    rules = await all_rules(cluster)
    assert not any(r.job_id == job_id for rs in rules.values() for r in rs), rules
    assert not await started.keyhole.ports.of_job(job_id)
    assert job_id not in await started.keyhole.claims.job_ids()  # the job's one request is still unused
    record = await started.store.get_job(job_id)
    assert record is not None
    assert not record.forwards
    assert not any(started.keyhole.pool.is_down(g) for g in started.keyhole.pool.gateways)


def forged_lists(cluster: SimCluster, own: list[str], other_job: list[str]) -> dict[str, list[str]]:
    own_address = next(c.address for c in cluster.compute_nodes if c.name == own[0])
    foreign = next(n for n in other_job if n not in own)
    return {
        "a command node": [cluster.command_nodes[0].node],
        "another job's node": [foreign],
        "an IP literal (the job's own node's address)": [own_address],
        "a command node's IP literal": [cluster.command_nodes[0].host],
        "localhost": ["localhost"],
        "more hosts than the job has": [*own, foreign],
    }


async def test_forged_node_lists_for_a_queued_job_are_refused_and_its_own_later_request_succeeds(
    started: Runner, sim_cluster: SimCluster
) -> None:
    other, other_slurm, _ = await job_with_token(started, "nodes.txt", 2)
    other_nodes = await running_nodes(sim_cluster, other_slurm)
    job_id, slurm_id, token = await job_with_token(started, "held.txt", 1)
    assert sim_cluster.scheduler.jobs[int(slurm_id)].state.value == "PENDING"

    for what, hosts in forged_lists(sim_cluster, [other_nodes[0]], other_nodes).items():
        response = await ask(started, signed(job_id, token, hosts))
        assert response.status_code == 409, (what, response.text)
        assert response.json()["error"] == "job-not-running"
        assert "Slurm does not report the job as RUNNING (PENDING)" in response.json()["message"]
        await nothing_placed(started, sim_cluster, job_id)

    sim_cluster.scheduler.release(int(slurm_id))
    [node] = await running_nodes(sim_cluster, slurm_id)
    answer = await ask(started, signed(job_id, token, [node]))
    assert answer.status_code == 200, answer.text
    [(_, external_port, _)] = parse_answer(answer.content, 1)
    address = next(c.address for c in sim_cluster.compute_nodes if c.name == node)
    [rule] = [r for rs in (await all_rules(sim_cluster)).values() for r in rs if r.job_id == job_id]
    assert (rule.internal_ip, rule.external_port) == (address, external_port)
    assert other not in {r.job_id for rs in (await all_rules(sim_cluster)).values() for r in rs}


async def test_forged_node_lists_for_a_running_job_are_refused_and_its_own_request_succeeds(
    started: Runner, sim_cluster: SimCluster
) -> None:
    job_id, slurm_id, token = await job_with_token(started, "nodes.txt", 1)
    own = await running_nodes(sim_cluster, slurm_id)
    _, other_slurm, _ = await job_with_token(started, "nodes.txt", 2)
    other_nodes = await running_nodes(sim_cluster, other_slurm)
    assert set(other_nodes) - set(own)

    for what, hosts in forged_lists(sim_cluster, own, other_nodes).items():
        response = await ask(started, signed(job_id, token, hosts))
        assert response.status_code == 403, (what, response.text)
        assert response.json()["error"] == "hosts-not-allocated"
        message = response.json()["message"]
        assert "not nodes of this job" in message or "the job has 1 node(s)" in message, (what, message)
        await nothing_placed(started, sim_cluster, job_id)

    answer = await ask(started, signed(job_id, token, own))
    assert answer.status_code == 200, answer.text
    address = next(c.address for c in sim_cluster.compute_nodes if c.name == own[0])
    [rule] = [r for rs in (await all_rules(sim_cluster)).values() for r in rs if r.job_id == job_id]
    assert rule.internal_ip == address
    await started.store.update_job(job_id, lambda r: r.model_copy(update={"state": JobState.AVAILABLE}))
    again = await ask(started, signed(job_id, token, [other_nodes[-1]]))  # a forged list once it has its ports
    assert again.status_code == 409
    assert again.json()["error"] == "already-asked"


async def test_a_multi_node_job_may_name_its_nodes_and_the_forward_goes_to_its_batch_host(
    started: Runner, sim_cluster: SimCluster
) -> None:
    job_id, slurm_id, token = await job_with_token(started, "nodes.txt", 2)
    nodes = await running_nodes(sim_cluster, slurm_id)
    answer = await ask(started, signed(job_id, token, list(reversed(nodes))))
    assert answer.status_code == 200, answer.text
    batch_host = next(c.address for c in sim_cluster.compute_nodes if c.name == nodes[0])
    [rule] = [r for rs in (await all_rules(sim_cluster)).values() for r in rs if r.job_id == job_id]
    assert rule.internal_ip == batch_host


async def test_refusals_back_off_across_replicas_without_asking_slurm_or_gateways(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    # quiet job watchers, so every squeue after the submission's own tick comes from a keyhole request
    async with Runner(make_settings(**QUIET_WATCHER)) as one, Runner(make_settings(**QUIET_WATCHER)) as two:
        await watcher_settled(one, two)
        leader = one if one.leadership.is_leader else two  # its watcher is the one the submission wakes
        ticks = one.watch_loop.iterations + two.watch_loop.iterations
        job_id, _, token = await job_with_token(leader, "held.txt", 1)

        async def woken_tick_done() -> bool:
            return one.watch_loop.iterations + two.watch_loop.iterations > ticks

        await wait_until(woken_tick_done, 20, "the submission's watcher tick never ran")
        assert one.keyhole.server is not None
        assert two.keyhole.server is not None
        forged = signed(job_id, token, [sim_cluster.command_nodes[0].node])
        async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
            first = await client.post(one.keyhole.server.url + protocol.REQUEST_PATH, content=forged)
            second = await client.post(two.keyhole.server.url + protocol.REQUEST_PATH, content=forged)
            assert (first.status_code, second.status_code) == (409, 409)
            asked = len(sim_cluster.command_log)
            for url in (one.keyhole.server.url, two.keyhole.server.url) * 5:
                waiting = await client.post(url + protocol.REQUEST_PATH, content=forged)
                assert waiting.status_code == 429, waiting.text
                assert waiting.json()["error"] == "too-many-refusals"
                assert "refused 2 times" in waiting.json()["message"]
                assert waiting.headers["Retry-After"] == "1"
        later = list(sim_cluster.command_log)[asked:]
        assert [
            r.argv for r in later if r.name in {"squeue", "scontrol", "getent", "nc", "sh", "iptables-restore"}
        ] == []


async def test_a_target_outside_the_compute_networks_is_refused(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    async with Runner(make_settings(**{"compute-networks": ["10.255.0.0/16"]})) as started:
        job_id, slurm_id, token = await job_with_token(started, "nodes.txt", 1)
        own = await running_nodes(sim_cluster, slurm_id)
        response = await ask(started, signed(job_id, token, own))
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "target-outside-compute-networks"
        address = next(c.address for c in sim_cluster.compute_nodes if c.name == own[0])
        assert f"{own[0]} ({address})" in response.json()["message"]
        await nothing_placed(started, sim_cluster, job_id)
    networks = {"compute-networks": ["127.0.0.0/8"]}  # the simulated cluster's own addresses
    async with Runner(make_settings(**networks)) as started:
        job_id, slurm_id, token = await job_with_token(started, "nodes.txt", 1)
        own = await running_nodes(sim_cluster, slurm_id)
        assert (await ask(started, signed(job_id, token, own))).status_code == 200


async def test_an_unresolvable_node_is_refused_without_marking_a_gateway_down(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    async with Runner(make_settings(**{"forwarding-hostname-suffix": "-ib0"})) as started:
        job_id, slurm_id, token = await job_with_token(started, "nodes.txt", 1)
        own = await running_nodes(sim_cluster, slurm_id)
        response = await ask(started, signed(job_id, token, own))
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "unresolvable-host"
        assert f"{own[0]}-ib0" in response.json()["message"]
        await nothing_placed(started, sim_cluster, job_id)
