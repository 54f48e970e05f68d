"""An oversized body gets its 413 intact over TCP, also from a client that sends all of it before reading.

A server that answers early and closes with unread data in its receive buffer makes the kernel send a reset,
and the client, still sending, never sees the answer. Both listeners (the frontend's API and the keyhole
service) read and drop the rest of such a body (within a bound) before they answer and close.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from runner.app import Runner
from runner.config import ApiSettings, Settings
from runner.keyhole import protocol
from runner.web.server import ApiServer
from tests.unit.api_support import AUTH, FakeJobService, make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BODY = b"x" * (10 * 1024 * 1024)


def send_all_then_read(port: int, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Write the whole request, then read the whole answer: a client that does not read while it sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
        answer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return answer
            answer += data


def request_head(path: str, extra: bytes) -> bytes:
    auth = AUTH["Authorization"].encode()
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: runner\r\nContent-Type: application/json\r\n"
        + (b"Authorization: " + auth + b"\r\n" + extra + b"\r\n")
    )


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return [*parts, b"0\r\n\r\n"]


@pytest.fixture
async def api_port() -> AsyncIterator[int]:
    async with ApiServer(make_app(FakeJobService()), ApiSettings(host="127.0.0.1", port=0)) as server:
        yield server.port


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_the_api_answers_413_to_a_client_that_sends_everything_first(api_port: int, framing: str) -> None:
    if framing == "chunked":
        head, chunks = request_head("/jobs", b"Transfer-Encoding: chunked\r\n"), chunked(BODY)
    else:
        head, chunks = request_head("/jobs", b"Content-Length: %d\r\n" % len(BODY)), [BODY]
    answer = await asyncio.to_thread(send_all_then_read, api_port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"error":"payload-too-large"' in answer


@pytest.fixture
async def keyhole_port(make_settings: Callable[..., Settings]) -> AsyncIterator[int]:
    async with Runner(make_settings()) as started:
        assert started.keyhole.server is not None
        yield started.keyhole.server.port


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_the_keyhole_answers_413_to_a_client_that_sends_everything_first(keyhole_port: int, framing: str) -> None:
    path = protocol.REQUEST_PATH
    if framing == "chunked":
        head, chunks = request_head(path, b"Transfer-Encoding: chunked\r\n"), chunked(BODY)
    else:
        head, chunks = request_head(path, b"Content-Length: %d\r\n" % len(BODY)), [BODY]
    answer = await asyncio.to_thread(send_all_then_read, keyhole_port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"error": "payload-too-large"' in answer
    assert b"limit 4194304 bytes" in answer
