"""DNAT rules written through the gateway's command handlers become real TCP forwards, and stop again."""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import AsyncIterator

import pytest

from simulator.commands import CommandContext, CommandResult
from simulator.etcd import free_port
from simulator.gateway import HANDLERS, GatewayService

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GW1, GW2, COMPUTE = "127.0.7.1", "127.0.7.2", "127.0.3.1"
IO_TIMEOUT = 5.0


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayService]:
    service = GatewayService([GW1, GW2])
    try:
        yield service
    finally:
        await service.close()


@pytest.fixture
async def compute() -> AsyncIterator[int]:
    """An application on the compute node: answers ``pong:<data>`` to each line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(b"pong:" + line)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, COMPUTE, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def sh(service: GatewayService | None, line: str, stdin: bytes = b"") -> CommandResult:
    argv = shlex.split(line)
    ctx = CommandContext(node=None, user="root", resolve=lambda name: {"compute1": COMPUTE}[name])
    if service is not None:
        ctx.services["gateway"] = service
    return await HANDLERS[argv[0]](ctx, argv, stdin)


async def ask(address: str, port: int, text: bytes = b"ping\n") -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), IO_TIMEOUT)
    try:
        writer.write(text)
        return await asyncio.wait_for(reader.readline(), IO_TIMEOUT)
    finally:
        writer.close()


async def refused(address: str, port: int) -> bool:
    try:
        await ask(address, port)
    except (ConnectionRefusedError, ConnectionResetError, asyncio.IncompleteReadError):
        return True
    return False


def dnat(port: int, to_port: int, extra: str = "") -> str:
    return f"-p tcp --dport {port} {extra} -j DNAT --to-destination {COMPUTE}:{to_port}"


async def test_rule_forwards_and_delete_stops_new_connections(gateway: GatewayService, compute: int) -> None:
    port = free_port(GW1)
    assert (await sh(gateway, "iptables -t nat -N BWVISU")).exit_status == 0
    assert (await sh(gateway, "iptables -w -t nat -A PREROUTING -j BWVISU")).exit_status == 0
    assert (await sh(gateway, f"iptables -t nat -A BWVISU {dnat(port, compute)}")).exit_status == 0
    assert await ask(GW1, port) == b"pong:ping\n"
    assert await ask(GW2, port, b"two\n") == b"pong:two\n"

    reader, writer = await asyncio.wait_for(asyncio.open_connection(GW1, port), IO_TIMEOUT)
    try:
        assert (await sh(gateway, f"iptables -t nat -D BWVISU {dnat(port, compute)}")).exit_status == 0
        assert await refused(GW1, port)
        assert await refused(GW2, port)
        writer.write(b"still\n")  # established flows keep their mapping, as with conntrack
        assert await asyncio.wait_for(reader.readline(), IO_TIMEOUT) == b"pong:still\n"
    finally:
        writer.close()
    assert gateway.forwards() == {}


async def test_closing_the_gateway_ends_flows_whose_rule_is_gone(compute: int) -> None:
    """A flow outliving its rule still belongs to the gateway: stopping the gateway ends it, leaving no task behind."""
    service = GatewayService([GW1])
    port = free_port(GW1)
    await sh(service, f"iptables -t nat -A PREROUTING {dnat(port, compute)}")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(GW1, port), IO_TIMEOUT)
    try:
        writer.write(b"before\n")
        assert await asyncio.wait_for(reader.readline(), IO_TIMEOUT) == b"pong:before\n"
        await sh(service, f"iptables -t nat -D PREROUTING {dnat(port, compute)}")
        await service.close()
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT) == b""  # the gateway ended the flow
    finally:
        writer.close()
        await service.close()


async def test_destination_address_limits_the_listener(gateway: GatewayService, compute: int) -> None:
    port = free_port(GW2)
    await sh(gateway, f"iptables -t nat -A PREROUTING -d {GW2} {dnat(port, compute)}")
    assert await ask(GW2, port) == b"pong:ping\n"
    assert await refused(GW1, port)


async def test_first_rule_wins_and_deleting_it_retargets(gateway: GatewayService, compute: int) -> None:
    port = free_port(GW1)
    await sh(gateway, f"iptables -t nat -A PREROUTING {dnat(port, compute)}")
    await sh(gateway, f"iptables -t nat -A PREROUTING {dnat(port, 1)}")
    assert gateway.forwards()[(GW1, port)] == (COMPUTE, compute)
    await sh(gateway, f"iptables -t nat -I PREROUTING {dnat(port, 1)}")
    assert await refused(GW1, port)  # the first rule points at a closed port: the client is reset
    await sh(gateway, "iptables -t nat -D PREROUTING 1")
    assert await ask(GW1, port) == b"pong:ping\n"


async def test_restore_batch_and_flush(gateway: GatewayService, compute: int) -> None:
    ports = [free_port(GW1) for _ in range(3)]
    batch = "*nat\n:BWVISU - [0:0]\n-A PREROUTING -j BWVISU\n"
    batch += "".join(f"-A BWVISU {dnat(p, compute, f'-m comment --comment job-{p}')}\n" for p in ports)
    result = await sh(gateway, "iptables-restore --noflush", (batch + "COMMIT\n").encode())
    assert result.exit_status == 0, result.stderr
    for p in ports:
        assert await ask(GW1, p) == b"pong:ping\n"
    saved = (await sh(gateway, "iptables-save -t nat")).stdout
    assert f"--comment job-{ports[0]} -j DNAT" in saved
    assert (await sh(gateway, "iptables -t nat -F BWVISU")).exit_status == 0
    for p in ports:
        assert await refused(GW1, p)
    assert gateway.forwards() == {}


async def test_failed_restore_starts_nothing(gateway: GatewayService, compute: int) -> None:
    port = free_port(GW1)
    batch = f"*nat\n-A PREROUTING {dnat(port, compute)}\n-A NOPE -j ACCEPT\nCOMMIT\n"
    result = await sh(gateway, "iptables-restore -n", batch.encode())
    assert (result.exit_status, result.stderr) == (
        1,
        "iptables-restore: line 3 failed: No chain/target/match by that name.\n",
    )
    assert gateway.forwards() == {}
    assert await refused(GW1, port)


async def test_port_in_use_keeps_the_rule_and_logs(
    gateway: GatewayService, compute: int, caplog: pytest.LogCaptureFixture
) -> None:
    squatter = await asyncio.start_server(lambda r, w: None, GW1, 0)
    try:
        port = squatter.sockets[0].getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="simulator.gateway"):
            result = await sh(gateway, f"iptables -t nat -A PREROUTING {dnat(port, compute)}")
        assert result.exit_status == 0
        assert "cannot listen on port" in caplog.text
        assert (GW1, port) in gateway.listen_failures
        assert (await sh(gateway, f"iptables -t nat -C PREROUTING {dnat(port, compute)}")).exit_status == 0
        assert await ask(GW2, port) == b"pong:ping\n"
    finally:
        squatter.close()
        await squatter.wait_closed()


async def test_close_ends_forwarders_and_connections(compute: int) -> None:
    service = GatewayService([GW1])
    port = free_port(GW1)
    await sh(service, f"iptables -t nat -A PREROUTING {dnat(port, compute)}")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(GW1, port), IO_TIMEOUT)
    try:
        writer.write(b"x\n")
        assert await asyncio.wait_for(reader.readline(), IO_TIMEOUT) == b"pong:x\n"
        await service.close()
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT) == b""
        assert await refused(GW1, port)
    finally:
        writer.close()


async def test_iptables_needs_a_gateway_but_nc_does_not(compute: int) -> None:
    assert (await sh(None, "iptables -t nat -S")).exit_status == 127
    result = await sh(None, f"nc -z -w 1 compute1 {compute}")
    assert result.exit_status == 0


async def test_iptables_errors_reach_the_channel(gateway: GatewayService) -> None:
    result = await sh(gateway, "iptables -t nat -C PREROUTING -j ACCEPT")
    assert result == CommandResult(1, "", "iptables: Bad rule (does a matching rule exist in that chain?).\n")
    result = await sh(gateway, "iptables --nope")
    assert result.exit_status == 2
    assert result.stderr.startswith('iptables v1.8.9 (nf_tables): unknown option "--nope"\n')


@pytest.mark.parametrize("to", ["self", "other"])
async def test_dnat_to_the_gateways_own_forwarded_port_is_reset_not_looped(gateway: GatewayService, to: str) -> None:
    """The kernel translates a flow once and delivers it locally, where no socket listens: a RST, no loop."""
    port, other = free_port(GW1), free_port(GW1)
    assert (
        await sh(
            gateway,
            f"iptables -t nat -A PREROUTING -d {GW1} -p tcp --dport {other} -j DNAT --to-destination {GW1}:{other}",
        )
    ).exit_status == 0
    target = port if to == "self" else other
    rule = f"-d {GW1} -p tcp --dport {port} -j DNAT --to-destination {GW1}:{target}"
    assert (await sh(gateway, f"iptables -t nat -A PREROUTING {rule}")).exit_status == 0
    assert gateway.forwards()[(GW1, port)] == (GW1, target)
    for _ in range(3):
        assert await refused(GW1, port)
    forwarder = gateway.forwarders[(GW1, port)]
    assert not forwarder._connections  # nothing left connecting to itself
