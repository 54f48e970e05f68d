"""The whole path on the simulated cluster: submit the web application, get a forward, connect, cancel, cleaned."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from simulator import SimCluster
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, all_rules, submit, wait_available
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_webapp_becomes_available_and_admits_only_its_session_secret_until_cancelled(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Runner(make_settings(templates_dir=str(EXAMPLES))) as started, api_client(started) as api:
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        body = await wait_available(api, job_id, 40)
        [service] = body["services"]
        gateways = {g.external_ip: g for g in sim_cluster.gateway_nodes}
        assert service["external-ip"] in gateways
        low, high = started.settings.keyholed_port_range.min, started.settings.keyholed_port_range.max
        assert low <= service["external-port"] <= high
        url = f"http://{service['external-ip']}:{service['external-port']}/"
        secret = await started.store.get_session_secret(job_id)
        assert secret is not None
        assert service["password"] == secret
        assert service["url"] == f"{url}?password={secret}"
        async with httpx.AsyncClient(timeout=5, trust_env=False) as stranger:
            refused = await stranger.get(url)
            # one character off (never the same character: a secret may end in any of them)
            wrong = await stranger.get(url, params={"password": secret[:-1] + ("y" if secret[-1] == "x" else "x")})
            forged_cookie = await stranger.get(url, headers={"Cookie": f"bwvisu-session={secret}"})
        assert (refused.status_code, wrong.status_code, forged_cookie.status_code) == (401, 401, 401)
        assert "needs its password" in refused.text
        async with httpx.AsyncClient(timeout=5, trust_env=False, follow_redirects=True) as user:
            answer = await user.get(service["url"])
            again = await user.get(url)  # the session cookie, not the password, admits it from now on
        assert answer.status_code == 200
        assert answer.text.startswith("bwvisu webapp on")
        assert str(answer.url) == url  # the secret left the address bar
        assert again.status_code == 200
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
        finished = (await api.get(f"/jobs/{job_id}")).json()
        assert [(s["password"], s["url"]) for s in finished["services"]] == [(None, None)]
        assert await started.store.get_session_secret(job_id) is None
        job_log = sim_cluster.home_prefix / "alice" / f"bwvisu-job-{finished['details']['slurm-job-id']}.out"
        assert secret not in job_log.read_text()
        async with httpx.AsyncClient(timeout=5, trust_env=False) as user:
            with pytest.raises(httpx.ConnectError):
                await user.get(url)
    # a full run's logs, every library at DEBUG; the test's own HTTP clients (the user's browser) aside
    runner_side = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(job_id in line for line in runner_side)
    assert not [line for line in runner_side if secret in line]
