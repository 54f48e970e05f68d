"""Testbed life cycle: a 3-member etcd comes up healthy (and takes the runner over TLS), and nothing is left behind
after stop or a failed start."""

from __future__ import annotations

import asyncio

import docker
import pytest

from containers import readiness
from containers.nodes import LABEL_RUN, WaitTimeout
from containers.testbed import FORWARD, Testbed, TestbedSpec
from tests.e2e.e2e_support import TOKEN, round_trip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SMALL_ETCD3 = TestbedSpec(compute=1, gateways=1, command=1, etcd_members=3, client=False)


def leftovers(run_id: str) -> tuple[list[str], list[str]]:
    client = docker.from_env()
    try:
        selector = {"label": f"{LABEL_RUN}={run_id}"}
        containers = [c.name for c in client.containers.list(all=True, filters=selector)]
        networks = [n.name for n in client.networks.list(filters=selector)]
        return containers, networks
    finally:
        client.close()


@pytest.mark.usefixtures("docker_engine")
def test_three_etcd_members_healthy_then_nothing_left() -> None:
    bed = Testbed(SMALL_ETCD3)
    with bed:
        assert len(bed.endpoints.etcd) == 3
        health = bed.node("etcd2").exec(["etcdctl", "endpoint", "health", "--cluster"])
        # etcdctl prints health reports on stderr.
        assert (health.stdout + health.stderr).count("is healthy") == 3, health
        assert len(bed.runner_config()["etcd-servers"]) == 3
        # The runner dials all three over TLS (round robin); each member's certificate is checked.
        assert asyncio.run(round_trip(bed, "three")) == TOKEN
        containers, networks = leftovers(bed.run_id)
        assert len(containers) == 7  # 3 etcd, controller, compute, command, gateway
        assert len(networks) == 2
    assert leftovers(bed.run_id) == ([], [])


@pytest.mark.usefixtures("docker_engine")
def test_failed_start_removes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    def never_ready(*_: object) -> None:
        raise WaitTimeout("injected: cluster never ready")

    monkeypatch.setattr(readiness, "wait_ready", never_ready)
    bed = Testbed(TestbedSpec(compute=1, gateways=1, command=1, client=False))
    with pytest.raises(WaitTimeout, match="injected"):
        bed.start()
    assert leftovers(bed.run_id) == ([], [])


def test_restarted_gateway_serves_again_with_the_same_host_key(testbed: Testbed) -> None:
    old_key = testbed.node("gateway2").exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout
    testbed.restart("gateway2")
    assert testbed.node("gateway2").exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout == old_key
    rules = testbed.node("gateway2").exec(["iptables", "-t", "nat", "-S", "POSTROUTING"])
    assert rules.ok, rules.stderr
    assert rules.stdout.count("testbed-masquerade") == 1
    # the helper's configuration is written again at start: the runner's account can still edit its chains
    chains = testbed.ssh("gateway2", f"sudo -n {FORWARD} ensure-chains")
    assert (chains.exit_code, chains.stderr) == (0, "")
    assert [g.hostname for g in testbed.endpoints.gateways] == ["gateway1", "gateway2"]
