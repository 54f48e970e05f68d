"""The runner on a simulated cluster set up as ``bwvisu_site`` says: its account may sudo only the two helpers.

With ``command-node-helper`` and ``gateway-helper`` set (``SimCluster.runner_config`` in the site mode), the
whole path works: submit, forward, connect, cancel, clean-up. Every privileged call it makes goes through a
helper; without the settings (bwVisu's plain sudo) the same cluster refuses it, and the runner says why.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from simulator import SimCluster
from simulator.config import ClusterConfig, SiteConfig
from simulator.testing import FAST_TIMING
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, all_rules, submit, wait_available
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SITE = SiteConfig()


@pytest.fixture
def sim_config() -> ClusterConfig:
    return ClusterConfig.build(timing=FAST_TIMING, site=SITE)


async def test_the_whole_path_goes_through_the_helpers(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = make_settings(templates_dir=str(EXAMPLES))
    assert (settings.command_node_helper, settings.gateway_helper) == (SITE.slurm_as_path, SITE.forward_path)
    async with Runner(settings) as started, api_client(started) as api:
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        body = await wait_available(api, job_id, 40)
        [service] = body["services"]
        async with httpx.AsyncClient(timeout=5, trust_env=False, follow_redirects=True) as user:
            answer = await user.get(service["url"])
        assert answer.status_code == 200
        assert answer.text.startswith("bwvisu webapp on")
        rules = await all_rules(sim_cluster)
        assert [(r.job_id, r.external_port) for rs in rules.values() for r in rs] == [
            (job_id, service["external-port"])
        ]
        assert (await api.delete(f"/jobs/{job_id}")).status_code == 200

        async def cleaned() -> bool:
            job = (await api.get(f"/jobs/{job_id}")).json()
            return job["state"] == "finished" and not any((await all_rules(sim_cluster)).values())

        await wait_until(cleaned, 30, "the cancelled job's rules remain")

    sudo = [r for r in sim_cluster.command_log if r.command_line.startswith("sudo")]
    assert {r.name for r in sudo} == {SITE.slurm_as_path, SITE.forward_path}
    assert all(r.exit_status == 0 and r.user == "root" for r in sudo)
    as_user = [r.argv[1:3] for r in sudo if r.name == SITE.slurm_as_path]
    assert as_user == [("alice", "sbatch"), ("alice", "scancel")]
    actions = {r.argv[1] for r in sudo if r.name == SITE.forward_path}
    assert actions == {"ensure-chains", "restore", "list"}
    # unprivileged, as before: squeue and sacct as the runner's account, probes and name lookups
    plain = {r.name for r in sim_cluster.command_log if not r.command_line.startswith("sudo")}
    assert plain <= {"squeue", "sacct", "getent", "nc", "sh", "timeout"}
    assert not sim_cluster.command_log.named("iptables")
    assert not sim_cluster.command_log.named("iptables-restore")


async def test_bwvisus_plain_sudo_is_refused_by_a_site_cluster_and_the_runner_says_so(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    settings = make_settings(templates_dir=str(EXAMPLES), **{"command-node-helper": None, "gateway-helper": None})
    async with Runner(settings) as started, api_client(started) as api:
        response = await api.post(
            "/jobs", json={"uid": "alice", "template-name": "template_webapp.txt", "variables": WEBAPP_VARIABLES}
        )
    assert response.status_code == 502
    assert "sudo: a password is required" in response.text
    [sbatch] = [r for r in sim_cluster.command_log if "sbatch" in r.argv or "sbatch" in r.command_line]
    assert (sbatch.argv[:4], sbatch.exit_status) == (("sudo", "-n", "-u", "alice"), 1)
    assert not sim_cluster.scheduler.jobs
