"""``python -m runner check`` as a real process against a simulated site cluster, a real etcd and a live runner.

Green when every node answers and the sudo rules are the site's; red, naming the node, when a gateway's sshd is
stopped or a command node refuses the runner's sudo; the other nodes' rows are still there and still green.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aetcd
import pytest

from runner.app import Runner
from runner.config import settings_from_mapping
from simulator import SimCluster
from simulator.config import ClusterConfig, SiteConfig
from simulator.etcd import EtcdServer
from simulator.procfs import EPHEMERAL_RANGE, PROCFS
from simulator.testing import FAST_TIMING
from tests.integration.conftest import runner_config
from tests.runner_cli import check_rows, run_runner

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def sim_config() -> ClusterConfig:
    return ClusterConfig.build(timing=FAST_TIMING, site=SiteConfig())


@pytest.fixture
def write_config(
    sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str, tmp_path: Path
) -> Callable[..., tuple[Path, dict[str, Any]]]:
    def write(**overrides: Any) -> tuple[Path, dict[str, Any]]:
        data = runner_config(sim_cluster, etcd_server, etcd_prefix, **overrides)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data))
        return path, data

    return write


async def run_check(config: Path, *extra: str) -> tuple[int, list[list[str]], str]:
    status, out, err = await run_runner("check", "--config", str(config), "--timeout", "10", *extra)
    return status, check_rows(out), err


def by_check(rows: list[list[str]]) -> dict[tuple[str, str], list[str]]:
    return {(row[0], row[1]): row for row in rows}


async def test_check_is_green_on_a_site_cluster_with_the_runner_up(
    sim_cluster: SimCluster,
    write_config: Callable[..., tuple[Path, dict[str, Any]]],
    etcd_client: aetcd.Client,
    etcd_prefix: str,
) -> None:
    path, data = write_config()
    async with Runner(settings_from_mapping(data)):
        status, rows, err = await run_check(path, "--as-user", "alice")
    assert status == 0, (rows, err)
    assert all(row[2] in ("ok", "skip") for row in rows), rows
    table = by_check(rows)
    commands = [f"{n['user']}@{n['ip']}:{n.get('port', 22)}" for n in data["command-nodes"]]
    gateways = [f"{g['user']}@{g['internal-ip']}:{g.get('port', 22)}" for g in data["gateway-nodes"]]
    for name in commands:
        for check in ("ssh", "sudo-as-user", "sudo-as-root", "keyhole"):
            assert (check, name) in table
    for name in gateways:
        for check in ("ssh", "gateway-list", "raw-iptables", "ephemeral-ports"):
            assert (check, name) in table
        assert "outside keyholed-port-range 50000-60000" in table["ephemeral-ports", name][3]
    assert {row[2] for row in rows if row[0] == "idle-counters"} == {"skip"}
    assert [c for c, _ in table].count("etcd") == 1
    assert "read and wrote" in table["etcd", f"{data['etcd-servers'][0]['ip']}:{data['etcd-servers'][0]['port']}"][3]
    # the key the check wrote is gone again
    assert len(await etcd_client.get_prefix(f"{etcd_prefix}/check/".encode())) == 0
    assert "refused" in table["sudo-as-root", commands[0]][3]


def node_name(entry: dict[str, Any], address_key: str) -> str:
    """A node as the table names it: the runner's account, address and SSH port."""
    return f"{entry['user']}@{entry[address_key]}:{entry.get('port', 22)}"


async def test_a_stopped_gateway_is_named_and_the_others_still_answer(
    sim_cluster: SimCluster, write_config: Callable[..., tuple[Path, dict[str, Any]]]
) -> None:
    path, data = write_config()
    stopped = sim_cluster.gateway_nodes[0]
    [entry] = [g for g in data["gateway-nodes"] if g["internal-ip"] == stopped.internal_ip]
    await sim_cluster.node_down(stopped.node)
    async with Runner(settings_from_mapping(data)):
        status, rows, err = await run_check(path, "--as-user", "alice")
    assert status == 1
    failed = {(row[0], row[1]) for row in rows if row[2] == "FAIL"}
    assert {node for _, node in failed} == {node_name(entry, "internal-ip")}
    assert ("ssh", node_name(entry, "internal-ip")) in failed
    others = [g for g in data["gateway-nodes"] if g is not entry]
    assert others
    table = by_check(rows)
    assert all(table["gateway-list", node_name(g, "internal-ip")][2] == "ok" for g in others)
    assert "checks failed" in err


async def test_sudo_refused_names_each_command_node_and_no_user_skips(
    sim_cluster: SimCluster, write_config: Callable[..., tuple[Path, dict[str, Any]]]
) -> None:
    # bwVisu's plain sudo lines against a site cluster that allows only the helpers
    path, data = write_config(**{"command-node-helper": None, "gateway-helper": None})
    status, rows, _ = await run_check(path, "--as-user", "alice")
    assert status == 1
    table = by_check(rows)
    for entry in data["command-nodes"]:
        row = table["sudo-as-user", node_name(entry, "ip")]
        assert row[2] == "FAIL"
        assert "a password is required" in row[3]
        assert table["ssh", node_name(entry, "ip")][2] == "ok"
        assert table["sudo-as-root", node_name(entry, "ip")][2] == "ok"
        # no runner: nothing listens at the keyhole endpoint
        assert table["keyhole", node_name(entry, "ip")][2] == "FAIL"
    for entry in data["gateway-nodes"]:
        assert table["gateway-list", node_name(entry, "internal-ip")][2] == "FAIL"
    status, rows, _ = await run_check(path)
    assert {row[2] for row in rows if row[0] == "sudo-as-user"} == {"skip"}


async def test_a_hanging_gateway_is_bounded_by_the_timeout_and_hides_nobody(
    sim_cluster: SimCluster, write_config: Callable[..., tuple[Path, dict[str, Any]]]
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_stay_silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _, base = write_config()
        hanging = {"internal-ip": "127.0.0.1", "external-ip": "127.0.0.1", "user": "bwvisu", "port": port}
        # SSH would wait far beyond the test's own timeout: only the check's bound ends the row
        ssh = {**base["ssh"], "connect_timeout": 600, "command_timeout": 600}
        path, _ = write_config(**{"gateway-nodes": [*base["gateway-nodes"], hanging], "ssh": ssh})
        status, rows, _ = await run_check(path, "--as-user", "alice", "--timeout", "2")
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert status == 1
    table = by_check(rows)
    name = node_name(hanging, "internal-ip")
    assert table["ssh", name][2:] == ["FAIL", "no answer within 2s"]
    assert {node for (_, node), row in table.items() if row[2] == "FAIL"} - {name} == {
        node for (check, node), row in table.items() if check == "keyhole"
    }  # no runner here: only the keyhole rows fail besides the hanging gateway
    # before any runner made its chains, listing them is still shown to be allowed
    fresh = [table["gateway-list", node_name(g, "internal-ip")] for g in base["gateway-nodes"]]
    assert all(row[2] == "ok" and "not created yet" in row[3] for row in fresh)


async def test_idle_counters_and_an_overlapping_ephemeral_range_are_checked_per_gateway(
    sim_cluster: SimCluster, write_config: Callable[..., tuple[Path, dict[str, Any]]]
) -> None:
    path, data = write_config(**{"idle-timeout-minutes": 30})
    overlapping = sim_cluster.gateway_nodes[0]
    [entry] = [g for g in data["gateway-nodes"] if g["internal-ip"] == overlapping.internal_ip]
    # Linux's default range on one gateway
    sim_cluster.nodes[overlapping.node].services[PROCFS] = {EPHEMERAL_RANGE: "32768\t60999\n"}
    status, rows, _ = await run_check(path, "--as-user", "alice")
    assert status == 1
    table = by_check(rows)
    name = node_name(entry, "internal-ip")
    row = table["ephemeral-ports", name]
    assert row[2] == "FAIL"
    assert "32768-60999" in row[3]
    assert "50000-60000" in row[3]
    assert 'net.ipv4.ip_local_port_range="32768 49999"' in row[3]
    others = [node_name(g, "internal-ip") for g in data["gateway-nodes"] if g is not entry]
    assert others
    assert all(table["ephemeral-ports", other][2] == "ok" for other in others)
    # no runner has made the counting chain yet: the helper's counters request reached iptables, which said so
    for g in data["gateway-nodes"]:
        counters = table["idle-counters", node_name(g, "internal-ip")]
        assert counters[2] == "ok"
        assert "not created yet" in counters[3]
    async with Runner(settings_from_mapping(data)) as runner:
        for gateway in runner.keyhole.pool.gateways:
            await runner.keyhole.pool.ensure_chains(gateway)
        status, rows, _ = await run_check(path, "--as-user", "alice")
    counted = [r for r in rows if r[0] == "idle-counters"]
    assert counted
    assert all(r[2] == "ok" and "BWVISU-ACCT read: 0 counting rules" in r[3] for r in counted), counted
