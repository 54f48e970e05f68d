"""``nc -z``: real connects, netcat-openbsd's -v lines and exit codes, -w honoured, batches concurrent, silent hosts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from simulator.commands import CommandContext, Streams
from simulator.faults import Faults
from simulator.probe import nc
from simulator.testing import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

HOST = "127.0.8.1"


def resolve(name: str) -> str:
    if name == "node1":
        return HOST
    raise KeyError(name)


CTX = CommandContext(node=None, user="runner", resolve=resolve)


@pytest.fixture
async def open_port() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, HOST, 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_open_port_succeeds_with_netcat_message(open_port: int) -> None:
    result = await nc(CTX, ["nc", "-z", "-v", "-w", "1", "node1", str(open_port)], b"")
    assert result.exit_status == 0
    assert result.stderr.startswith(f"Connection to node1 {open_port} port [tcp/")
    assert result.stderr.endswith("] succeeded!\n")
    quiet = await nc(CTX, ["nc", "-z", "-w", "1", "node1", str(open_port)], b"")
    assert (quiet.exit_status, quiet.stderr) == (0, "")


async def test_closed_port_fails_with_connection_refused() -> None:
    port = await closed_port()
    result = await nc(CTX, ["nc", "-zv", "-w1", HOST, str(port)], b"")
    assert result.exit_status == 1
    assert result.stderr == f"nc: connect to {HOST} port {port} (tcp) failed: Connection refused\n"


async def test_batch_reports_each_port_in_order_and_succeeds_if_any(open_port: int) -> None:
    port = await closed_port()
    result = await nc(CTX, ["nc", "-z", "-v", "-w", "1", "node1", str(port), str(open_port)], b"")
    assert result.exit_status == 0
    lines = result.stderr.splitlines()
    assert lines[0] == f"nc: connect to node1 port {port} (tcp) failed: Connection refused"
    assert lines[1].startswith(f"Connection to node1 {open_port} port")


async def test_timeout_is_honoured_without_blocking_the_loop() -> None:
    # A listener with backlog 0 that never accepts: once its queue is full, connects hang until -w.
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((HOST, port))
            fillers.append(filler)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        start = time.monotonic()
        result = await nc(CTX, ["nc", "-z", "-v", "-w", "1", HOST, str(port)], b"")
        elapsed = time.monotonic() - start
        task.cancel()
        assert result.exit_status == 1
        assert "timed out: Operation now in progress" in result.stderr
        assert 0.9 <= elapsed < 5
        assert ticks >= 5
    finally:
        for filler in fillers:
            filler.close()
        sock.close()


async def test_unknown_host_and_bad_usage() -> None:
    result = await nc(CTX, ["nc", "-z", "-w", "1", "nosuchhost", "22"], b"")
    assert result.exit_status == 1
    assert result.stderr == 'nc: getaddrinfo for host "nosuchhost" port 22: Name or service not known\n'
    assert (await nc(CTX, ["nc", "-z", "node1"], b"")).exit_status == 1
    assert (await nc(CTX, ["nc", "-q", "node1", "1"], b"")).stderr.startswith("nc: invalid option -- 'q'")


async def test_a_silenced_host_times_out_on_every_port_one_after_another() -> None:
    faults = Faults()
    faults.silence_host(HOST)
    ctx = CommandContext(node=None, user="runner", resolve=resolve, faults=faults)
    start = time.monotonic()
    result = await nc(ctx, ["nc", "-z", "-v", "-w1", "node1", "50001", "50002"], b"")
    elapsed = time.monotonic() - start
    assert result.exit_status == 1
    assert result.stderr == (
        "nc: connect to node1 port 50001 (tcp) timed out: Operation now in progress\n"
        "nc: connect to node1 port 50002 (tcp) timed out: Operation now in progress\n"
    )
    assert elapsed >= 2  # netcat-openbsd tries the ports in turn: one -w each
    other = await nc(ctx, ["nc", "-z", "-w1", "127.8.0.9", str(await closed_port())], b"")
    assert other.exit_status == 1  # other hosts still answer (here: refused at once)


async def test_a_silenced_hosts_lines_reach_a_parent_as_they_are_written() -> None:
    faults = Faults()
    faults.silence_host(HOST)
    streams = Streams()
    ctx = CommandContext(node=None, user="runner", resolve=resolve, faults=faults, streams=streams)
    task = asyncio.create_task(nc(ctx, ["nc", "-z", "-v", "-w1", HOST, "50001", "50002"], b""))
    await wait_for(lambda: bool(streams.stderr))
    assert not task.done()
    assert streams.stderr == [f"nc: connect to {HOST} port 50001 (tcp) timed out: Operation now in progress\n"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
