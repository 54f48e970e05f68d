"""A keyhole request's bounded probe over SSH on the simulated cluster: hosts that never answer cost it one
``nc`` timeout per port in their lane, not one per host in turn, and a probe over its deadline ends on the
gateway, raises :class:`ProbeTimedOut` and leaves the gateway healthy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from runner.config import SshSettings
from runner.errors import ProbeTimedOut
from runner.gateway import commands
from runner.gateway.pool import Gateway, GatewayPool
from runner.ssh import SshNode
from simulator.cluster import SimCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SSH_COMMAND_TIMEOUT = 30.0


@pytest.fixture
async def pool(sim_cluster: SimCluster) -> AsyncIterator[GatewayPool]:
    settings = SshSettings(
        client_keys=[sim_cluster.client_key_path],
        known_hosts=sim_cluster.known_hosts_path,
        command_timeout=SSH_COMMAND_TIMEOUT,
    )
    gw = sim_cluster.gateway_nodes[0]
    made = GatewayPool(
        [Gateway(SshNode(gw.host, gw.port, gw.user, settings), gw.internal_ip, gw.external_ip)], down_retry_after=60
    )
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def listener(sim_cluster: SimCluster) -> AsyncIterator[tuple[str, int]]:
    """An application listening on the first compute node: ``(address, port)``."""
    address = sim_cluster.compute_nodes[0].address

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, address, 0)
    try:
        yield address, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def job_hosts(sim_cluster: SimCluster, count: int) -> list[str]:
    """The compute nodes' addresses, then more loopback addresses (nothing listens there: refused at once)."""
    compute = [c.address for c in sim_cluster.compute_nodes]
    prefix = compute[0].rsplit(".", 2)[0]
    return compute + [f"{prefix}.100.{i + 1}" for i in range(count - len(compute))]


async def test_a_request_probe_over_many_hosts_some_silent_finishes_within_its_deadline(
    sim_cluster: SimCluster,
    sim_silent_host: Callable[[str], str],
    pool: GatewayPool,
    listener: tuple[str, int],
) -> None:
    address, port = listener
    hosts = job_hosts(sim_cluster, 40)
    # Eight silent hosts, each in a lane of its own (hosts are dealt round-robin into the lanes); probed in
    # turn, as the sweep does, they would cost 8 hosts x 2 ports x 1 s.
    silent = [sim_silent_host(host) for host in hosts[1:9]]
    targets = [(host, p) for host in hosts for p in (port, port + 1)]
    gateway = pool.gateways[0]
    start = time.monotonic()
    found = await pool.probe(gateway, targets, deadline=commands.REQUEST_PROBE_DEADLINE)
    elapsed = time.monotonic() - start
    print(f"request probe: {len(hosts)} hosts ({len(silent)} silent) x 2 ports in {elapsed:.2f}s")
    assert found == {(address, port)}
    assert elapsed < SSH_COMMAND_TIMEOUT
    assert not pool.is_down(gateway)
    [record] = sim_cluster.command_log.named("timeout")
    assert record.exit_status == 0
    assert record.argv[:2] == ("timeout", str(commands.REQUEST_PROBE_DEADLINE))


async def test_a_request_probe_over_its_deadline_raises_and_the_gateway_stays_healthy(
    sim_cluster: SimCluster,
    sim_silent_host: Callable[[str], str],
    pool: GatewayPool,
    listener: tuple[str, int],
) -> None:
    address, port = listener
    silent = sim_silent_host(job_hosts(sim_cluster, 5)[-1])
    gateway = pool.gateways[0]
    with pytest.raises(ProbeTimedOut):
        # three ports of a silent host cost three seconds; the gateway ends the probe after one
        await pool.probe(gateway, [(address, port), *((silent, port + i) for i in range(3))], deadline=1)
    assert not pool.is_down(gateway)
    assert [r.exit_status for r in sim_cluster.command_log.named("timeout")] == [124]
    # the gateway goes on answering, the next probe included
    assert await pool.probe(gateway, [(address, port)], deadline=commands.REQUEST_PROBE_DEADLINE) == {(address, port)}
    assert await pool.probe(gateway, [(address, port), (address, port + 1)]) == {(address, port)}
