"""Idle sessions on the simulated cluster: real etcd, real SSH to the simulated gateways, real TCP through the
forward. Traffic keeps a job; silence warns (in details and so in the event stream), traffic clears the warning,
more silence cancels it with the reason in its end; the counting rule goes with the forward; without the setting
nothing of it happens."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.idle import IDLE_WARNING, LAST_TRAFFIC
from runner.loops import Loop
from runner.records import CANCEL_REASON
from runner.web.server import ApiServer
from simulator import SimCluster
from tests.integration.conftest import API_AUTH
from tests.integration.idle_support import counting_rules
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, all_rules, submit, wait_available
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TIMEOUT_MINUTES, WARNING_MINUTES = 0.1, 0.05  # 6 s of silence cancels, a warning 3 s before


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[tuple[Runner, httpx.AsyncClient]]:
    settings = make_settings(
        templates_dir=str(EXAMPLES), idle_timeout_minutes=TIMEOUT_MINUTES, idle_warning_minutes=WARNING_MINUTES
    )
    async with (
        Runner(settings) as started,
        ApiServer(started.app, started.settings.api.model_copy(update={"host": "127.0.0.1", "port": 0})) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=60, trust_env=False) as api,
    ):
        yield started, api


async def follow(api: httpx.AsyncClient, job_id: str, seen: list[dict[str, Any]]) -> None:
    """Append every job body the event stream sends until it ends."""
    async with api.stream("GET", f"/jobs/{job_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))


async def test_traffic_keeps_the_job_silence_warns_then_cancels_and_the_rule_goes_with_the_forward(
    served: tuple[Runner, httpx.AsyncClient], sim_cluster: SimCluster
) -> None:
    started, api = served
    assert started.idle is not None
    sweeps = started.idle[1]
    job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
    [service] = (await wait_available(api, job_id, 40))["services"]
    public = f"http://{service['external-ip']}:{service['external-port']}/"
    seen: list[dict[str, Any]] = []
    stream = asyncio.create_task(follow(api, job_id, seen))
    async with httpx.AsyncClient(timeout=5, trust_env=False) as user:
        # the rule is written with the forward; the runner's own readiness probes do not count
        assert await counting_rules(sim_cluster, service["external-ip"]) == [(job_id, 0)]

        # a user keeps using the session for longer than the timeout: the job stays, last-traffic follows
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.5 * TIMEOUT_MINUTES * 60
        while loop.time() < until:
            assert (await user.get(public)).status_code == 401  # any traffic through the forward counts
            await wait_until(stepped(sweeps, 2), 10, "the idle sweep stopped")
        body = (await api.get(f"/jobs/{job_id}")).json()
        assert body["state"] == "available"
        assert LAST_TRAFFIC in body["details"]
        assert CANCEL_REASON not in body["details"]
        [(_, packets)] = await counting_rules(sim_cluster, service["external-ip"])
        assert packets > 0

        # silence, also while someone talks to the compute node directly (not through the forward): a warning
        internal = (await started.store.get_job(job_id)).forwards[0]  # type: ignore[union-attr]
        direct = f"http://{internal.internal_ip}:{internal.internal_port}/"

        async def warned() -> bool:
            await user.get(direct)
            return IDLE_WARNING in (await api.get(f"/jobs/{job_id}")).json()["details"]

        await wait_until(warned, 30, "no idle warning")
        warning = (await api.get(f"/jobs/{job_id}")).json()
        assert warning["state"] == "available"
        assert "no traffic through the job's forwards since" in warning["details"][IDLE_WARNING]

        # traffic clears the warning
        await user.get(public)

        async def cleared() -> bool:
            return IDLE_WARNING not in (await api.get(f"/jobs/{job_id}")).json()["details"]

        await wait_until(cleared, 30, "traffic did not clear the warning")
        assert (await api.get(f"/jobs/{job_id}")).json()["state"] == "available"

        # silence again: warned, then cancelled; the end says why
        async def finished() -> bool:
            return bool((await api.get(f"/jobs/{job_id}")).json()["state"] == "finished")

        await wait_until(finished, 60, "the idle job was not cancelled")
    end = (await api.get(f"/jobs/{job_id}")).json()["details"]
    assert "idle: no traffic through its forwards for 0.1 minutes" in end[CANCEL_REASON]
    assert end["end-reason"].startswith("CANCELLED")
    assert end[CANCEL_REASON] in end["end-reason"]
    async with asyncio.timeout(30):
        await stream
    states = [(b["state"], IDLE_WARNING in b["details"]) for b in seen]
    cancelled = next(i for i, (state, _) in enumerate(states) if state != "available")
    assert ("available", True) in states[:cancelled]  # the stream showed the warning before the cancel
    assert any(a[1] and not b[1] and b[0] == "available" for a, b in itertools.pairwise(states))  # and its clearing

    async def gone() -> bool:
        rules = await counting_rules(sim_cluster, service["external-ip"])
        return not rules and not any((await all_rules(sim_cluster)).values())

    await wait_until(gone, 30, "the counting rule outlived the forward")


def stepped(loop: Loop, steps: int) -> Callable[[], Awaitable[bool]]:
    """A condition: ``loop`` has run ``steps`` more steps than now."""
    target = loop.iterations + steps

    async def check() -> bool:
        return loop.iterations >= target

    return check


async def test_without_the_setting_nothing_counts_and_nothing_is_cancelled(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = make_settings(templates_dir=str(EXAMPLES))
    async with (
        Runner(settings) as started,
        ApiServer(started.app, started.settings.api.model_copy(update={"host": "127.0.0.1", "port": 0})) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=60, trust_env=False) as api,
        httpx.AsyncClient(timeout=5, trust_env=False) as user,
    ):
        assert started.idle is None
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        [service] = (await wait_available(api, job_id, 40))["services"]
        assert (await user.get(f"http://{service['external-ip']}:{service['external-port']}/")).status_code == 401
        await wait_until(stepped(started.keyhole.loop, 3), 10, "the keyhole watcher stopped")
        body = (await api.get(f"/jobs/{job_id}")).json()
        assert body["state"] == "available"
        assert not {LAST_TRAFFIC, IDLE_WARNING, CANCEL_REASON} & set(body["details"])
        for gateway in sim_cluster.gateway_nodes:
            listed = await sim_cluster.gateway_service(gateway.node).iptables(["-t", "filter", "-S"])
            assert "BWVISU" not in listed.stdout  # no chain, no jump: bwVisu's rules only
