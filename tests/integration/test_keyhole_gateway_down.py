"""A gateway that dies under the keyhole service.

A request that chose a gateway before it was known to be down fails over to a live gateway within the same
request (the job's client sees no error), the ports reserved for the dead gateway are released, and a
gateway whose SSH hangs (a stopped host: connections time out) is tried once, not once per queued command.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from runner.app import Runner
from runner.config import Settings
from runner.errors import GatewayUnavailable
from runner.gateway.pool import Gateway, GatewayPool
from runner.ssh import CommandRunner, SshNode
from simulator import SimCluster
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, submit, wait_available
from tests.scripted import Call, ScriptedRunner

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def job_logs(cluster: SimCluster) -> str:
    return "".join(p.read_text() for p in sorted(Path(cluster.home_prefix, "alice").glob("bwvisu-job-*.out")))


async def assert_held_only_forwarded(started: Runner, job_id: str, body: dict[str, Any]) -> None:
    held = await started.keyhole.ports.of_job(job_id)
    [service] = body["services"]
    assert [(r.port, r.forward and r.forward.external_ip) for r in held] == [
        (service["external-port"], service["external-ip"])
    ]


async def test_gateway_dying_before_the_rule_fails_over_within_the_request(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    by_internal = {g.internal_ip: g for g in sim_cluster.gateway_nodes}
    killed: list[str] = []
    runner_box: list[Runner] = []

    async def fault(step: str) -> None:
        if step == "before-rule" and not killed:
            [record] = [r for r in await runner_box[0].keyhole.ports.all() if r.gateway_ssh_ip]
            killed.append(record.gateway_ssh_ip or "")
            await sim_cluster.node_down(by_internal[killed[0]].node)

    settings = make_settings(templates_dir=str(EXAMPLES))
    async with Runner(settings, keyhole_fault=fault) as started, api_client(started) as api:
        runner_box.append(started)
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        body = await wait_available(api, job_id, 40)
        assert killed, "the fault never fired"
        [service] = body["services"]
        assert service["external-ip"] != by_internal[killed[0]].external_ip
        await assert_held_only_forwarded(started, job_id, body)
        assert "retrying" not in job_logs(sim_cluster), "the client had to retry: the request did not fail over"


def dies_on_probe(inner: CommandRunner, cluster: SimCluster, node: str) -> ScriptedRunner:
    """A gateway's runner that takes its node down just before the first port probe, as a crash would."""

    async def crash(call: Call) -> None:
        await cluster.node_down(node)

    return ScriptedRunner(inner.name, inner=inner).on(lambda argv: "nc" in " ".join(argv), crash, times=1)


async def test_ports_reserved_for_a_gateway_that_died_are_released(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    async with Runner(make_settings(templates_dir=str(EXAMPLES))) as started, api_client(started) as api:
        first = started.keyhole.pool.gateways[0]  # least loaded by configuration order: the first request's pick
        dying = dies_on_probe(first.runner, sim_cluster, sim_cluster.gateway_nodes[0].node)
        first.runner = dying
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
        body = await wait_available(api, job_id, 40)
        assert any("nc" in " ".join(argv) for argv in dying.calls)
        assert body["services"][0]["external-ip"] != first.external_ip
        await assert_held_only_forwarded(started, job_id, body)


class Blackhole:
    """A TCP listener that accepts and never speaks: SSH to it hangs until the connect timeout."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def _accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *_: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def blackhole() -> AsyncIterator[tuple[Blackhole, int]]:
    hole = Blackhole()
    async with hole as port:
        yield hole, port


async def test_hanging_gateway_is_tried_once_while_commands_queue(
    make_settings: Callable[..., Settings], blackhole: tuple[Blackhole, int]
) -> None:
    hole, port = blackhole
    settings = make_settings(ssh={**make_settings().ssh.model_dump(mode="json"), "connect_timeout": 1})
    node = SshNode("127.0.0.1", port, "bwvisu", settings.ssh)
    pool = GatewayPool([Gateway(node, "127.0.0.1", "127.0.0.2")], down_retry_after=60)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.gather(
        *(pool.resolve(pool.gateways[0], ["host"]) for _ in range(5)), return_exceptions=True
    )
    elapsed = loop.time() - t0
    assert all(isinstance(r, GatewayUnavailable) for r in results), results
    assert hole.accepted == 1, "every queued command tried to connect again"
    assert elapsed < 2.5, f"queued commands waited for their own connect timeouts ({elapsed:.1f} s)"
    # marked down: the next command is refused at once, without touching the network
    with pytest.raises(GatewayUnavailable):
        await pool.resolve(pool.gateways[0], ["host"])
    assert hole.accepted == 1
    await pool.close()
