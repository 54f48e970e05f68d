"""Idle sessions on a simulated cluster set up as ``bwvisu_site`` says (the runner's account may sudo only the
helpers, so plain ``sudo iptables`` is refused): the counting chain, its counters and its rules go through
``bwvisu-forward`` too, and the job is still seen used by traffic and cancelled by silence."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.idle import LAST_TRAFFIC
from runner.records import CANCEL_REASON
from simulator import SimCluster
from simulator.config import ClusterConfig, SiteConfig
from simulator.testing import FAST_TIMING
from tests.integration.conftest import api_client
from tests.integration.idle_support import counting_rules
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, submit, wait_available
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def sim_config() -> ClusterConfig:
    return ClusterConfig.build(timing=FAST_TIMING, site=SiteConfig())


async def test_counting_goes_through_the_helper(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = make_settings(templates_dir=str(EXAMPLES), idle_timeout_minutes=0.1, idle_warning_minutes=0.05)
    assert settings.gateway_helper is not None
    async with (
        Runner(settings) as started,
        api_client(started) as api,
        httpx.AsyncClient(timeout=5, trust_env=False) as user,
    ):
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        [service] = (await wait_available(api, job_id, 40))["services"]
        assert await counting_rules(sim_cluster, service["external-ip"]) == [(job_id, 0)]
        public = f"http://{service['external-ip']}:{service['external-port']}/"

        async def traffic_seen() -> bool:
            await user.get(public)
            return LAST_TRAFFIC in (await api.get(f"/jobs/{job_id}")).json()["details"]

        await wait_until(traffic_seen, 30, "traffic through the forward was not seen")

        async def gone() -> bool:
            body = (await api.get(f"/jobs/{job_id}")).json()
            rules = await counting_rules(sim_cluster, service["external-ip"])
            return body["state"] == "finished" and not rules

        await wait_until(gone, 60, "the silent job was not cancelled, or its counting rule stayed")
        assert "idle: no traffic" in (await api.get(f"/jobs/{job_id}")).json()["details"][CANCEL_REASON]
