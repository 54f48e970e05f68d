"""``python -m runner check`` against the real containerised cluster, set up as ``bwvisu_site`` says.

Green with a runner up (on the host, its keyhole service on the host's cluster-network address, as in
``test_runner_path``); red, naming the gateway, once that gateway's container is stopped, while the other nodes'
rows stay green. The gateway is started again afterwards, so the session's testbed is whole for later tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from containers.etcd_members import ETCD_PREFIX
from containers.testbed import Testbed
from runner.app import Runner
from runner.config import settings_from_mapping
from tests.e2e.e2e_support import runner_settings
from tests.runner_cli import check_table, run_runner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def run_check(config: Path) -> tuple[int, dict[tuple[str, str], list[str]], str]:
    status, out, err = await run_runner("check", "--config", str(config), "--as-user", "alice", "--timeout", "15")
    return status, check_table(out), err


async def test_check_green_on_the_testbed_and_red_naming_a_stopped_gateway(testbed: Testbed, tmp_path: Path) -> None:
    data = runner_settings(testbed, f"{ETCD_PREFIX}/e2e-{testbed.run_id}-check")
    data["idle-timeout-minutes"] = 30  # the counting chain through the real bwvisu-forward
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    async with Runner(settings_from_mapping(data)):
        status, table, err = await run_check(path)
        assert status == 0, (table, err)
        assert {row[2] for row in table.values()} == {"ok"}
        assert {check for check, _ in table} == {
            "ssh", "sudo-as-user", "sudo-as-root", "keyhole", "gateway-list", "raw-iptables", "idle-counters",
            "ephemeral-ports", "etcd"
        }  # fmt: skip

        entry = data["gateway-nodes"][-1]
        name = f"{entry['user']}@{entry['internal-ip']}:{entry['port']}"
        [stopped] = [g.hostname for g in testbed.endpoints.gateways if g.cluster_ip == entry["internal-ip"]]
        testbed.node(stopped).container.get_wrapped_container().stop(timeout=2)
        try:
            status, table, err = await run_check(path)
        finally:
            testbed.restart(stopped)
    assert status == 1
    failed = {node for (_, node), row in table.items() if row[2] == "FAIL"}
    assert failed == {name}, table
    assert table["ssh", name][2] == "FAIL"
    assert "checks failed" in err
