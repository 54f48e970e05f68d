"""The whole path on the simulated cluster: submit the web application, get a forward, connect, cancel, cleaned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from simulator import SimCluster
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, all_rules, submit, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_webapp_becomes_available_and_answers_through_the_gateway_until_cancelled(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    async with Runner(make_settings(templates_dir=str(EXAMPLES))) as started, api_client(started) as api:
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        body: dict[str, Any] = {}

        async def available() -> bool:
            nonlocal body
            body = (await api.get(f"/jobs/{job_id}")).json()
            return bool(body["state"] == "available")

        await wait_until(available, 40, f"job never became available: {body}")
        [service] = body["services"]
        gateways = {g.external_ip: g for g in sim_cluster.gateway_nodes}
        assert service["external-ip"] in gateways
        low, high = started.settings.keyholed_port_range.min, started.settings.keyholed_port_range.max
        assert low <= service["external-port"] <= high
        url = f"http://{service['external-ip']}:{service['external-port']}/"
        async with httpx.AsyncClient(timeout=5, trust_env=False) as user:
            answer = await user.get(url)
        assert answer.status_code == 200
        assert answer.text.startswith("bwvisu webapp on")
        rules = await all_rules(sim_cluster)
        gateway = gateways[service["external-ip"]].node
        assert [(r.job_id, r.external_port) for r in rules[gateway]] == [(job_id, service["external-port"])]
        assert await started.keyhole.ports.of_job(job_id)

        assert (await api.delete(f"/jobs/{job_id}")).status_code == 200

        async def cleaned() -> bool:
            job = (await api.get(f"/jobs/{job_id}")).json()
            rules = await all_rules(sim_cluster)
            ports = await started.keyhole.ports.of_job(job_id)
            return job["state"] == "finished" and not any(rules.values()) and not ports

        await wait_until(cleaned, 30, "rules or reservations of the cancelled job remain")
        async with httpx.AsyncClient(timeout=5, trust_env=False) as user:
            with pytest.raises(httpx.ConnectError):
                await user.get(url)
