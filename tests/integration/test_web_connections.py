"""Connection bounds of both HTTP listeners, attacked over real sockets: a client that opens connections and sends
half a request is cut off, and one address flooding the keyhole listener leaves room for every other address."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from runner.app import Runner
from runner.config import ApiSettings
from runner.keyhole.assembly import CONNECTIONS_PER_NODE
from runner.web.server import ApiServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BOUND = 30.0  # generous: how long a test waits for the server to act


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = (await receive())["type"]
            await send({"type": f"{message}.complete"})
            if message == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def _served(**bounds: float) -> AsyncIterator[ApiServer]:
    async with ApiServer(_hello, ApiSettings(host="127.0.0.1", port=0), **bounds) as server:  # type: ignore[arg-type]
        yield server


async def _connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (end of stream or reset) within :data:`BOUND`."""
    try:
        async with asyncio.timeout(BOUND):
            while await reader.read(4096):
                pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


async def _get(port: int, source: str = "127.0.0.1") -> bytes:
    reader, writer = await _connect(port, source)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(BOUND):
            return await reader.read()
    finally:
        writer.close()


async def test_a_connection_that_never_finishes_its_request_head_is_closed() -> None:
    async with _served(head_timeout=0.3) as server:
        reader, writer = await _connect(server.port)
        writer.write(b"POST /v1/ports HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        await writer.drain()
        assert await _closed_by_server(reader), "a half-sent request head held its connection"
        writer.close()
        assert (await _get(server.port)).startswith(b"HTTP/1.1 200")


async def test_a_kept_alive_connection_trickling_its_next_head_is_closed() -> None:
    async with _served(head_timeout=0.5) as server:
        reader, writer = await _connect(server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(BOUND):
            answer = await reader.readuntil(b"hello")
        assert answer.startswith(b"HTTP/1.1 200")

        async def trickle() -> None:  # a byte every 0.1 s restarts uvicorn's keep-alive timer, never ours
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

        sender = asyncio.create_task(trickle())
        try:
            assert await _closed_by_server(reader), "a trickled request head held its connection"
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            writer.close()


async def test_one_address_holds_at_most_its_share_and_others_are_still_served() -> None:
    async with _served(per_client=3) as server:
        held = [await _connect(server.port) for _ in range(3)]
        for _, writer in held:
            writer.write(b"GET / HTTP/1.1\r\n")  # idle, head unfinished
        extra_reader, extra_writer = await _connect(server.port)
        assert await _closed_by_server(extra_reader), "a fourth connection from one address was kept"
        extra_writer.close()
        # another address (another compute node) is served while the first one's connections are held
        assert (await _get(server.port, source="127.0.0.2")).startswith(b"HTTP/1.1 200")
        for _, writer in held:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in held), return_exceptions=True)

        async def served_again() -> bool:
            return (await _get(server.port)).startswith(b"HTTP/1.1 200")

        assert await served_again(), "the address stayed refused after its connections closed"


async def test_the_keyhole_listener_limits_each_node(runner: Runner) -> None:
    assert runner.keyhole.server is not None
    port = runner.keyhole.server.port
    flood = []
    try:
        for _ in range(CONNECTIONS_PER_NODE):
            reader, writer = await _connect(port)
            writer.write(b"POST /v1/ports HTTP/1.1\r\n")
            flood.append((reader, writer))
        reader, writer = await _connect(port)
        assert await _closed_by_server(reader), "the keyhole kept a connection past its per-node share"
        writer.close()
        answer = await _get(port, source="127.0.0.3")
        assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    finally:
        for _, w in flood:
            w.close()
