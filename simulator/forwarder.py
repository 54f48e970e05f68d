"""Asyncio TCP forwarders: what a DNAT rule does to a packet, done with one listening socket per rule.

A :class:`Forwarder` listens on ``address:port`` (no thread and no task while idle) and pipes each accepted
connection both ways to its current :attr:`Forwarder.target`, which the gateway may change in place when a
different rule starts to win. Closing a forwarder stops new connections; established ones keep running, as
conntrack keeps NAT mappings of established flows after a rule is deleted. :meth:`Forwarder.aclose` ends
those too. When the target refuses, the client connection is reset, the nearest a user-space forwarder
gets to netfilter passing on the compute node's RST.

A target that is the gateway itself on a forwarded port (its own ``address:port``, or another of its DNAT'd
ports) is reset without connecting: the kernel translates a flow once, in PREROUTING, and delivers it locally
where no socket listens on a DNAT'd port, so the client gets a RST. Connecting would reach this forwarder
again and loop until the process runs out of file descriptors.

What the client sends is reported to ``on_traffic`` (the target, the number of packets and bytes), so the
gateway can count it in its filter table as netfilter's ``FORWARD`` hook would (:mod:`simulator.iptables_counters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

from simulator.iptables_counters import HEADER_BYTES, SYN_BYTES

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
_CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


Traffic = Callable[[tuple[str, int], int, int], None]
"""``(target, packets, bytes)``: a piece of client traffic forwarded to ``target``."""


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counted: Callable[[int], None] | None = None
) -> None:
    try:
        while data := await reader.read(_CHUNK):
            if counted is not None:
                counted(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Forwarder:
    """``address:port`` -> :attr:`target`, for one gateway listen address and one DNAT rule."""

    def __init__(
        self,
        address: str,
        port: int,
        target: tuple[str, int],
        forwarded: Callable[[tuple[str, int]], bool] | None = None,
        on_traffic: Traffic | None = None,
    ) -> None:
        """``forwarded`` says whether an ``(address, port)`` is one the gateway forwards (a target to reset)."""
        self.address = address
        self.port = port
        self.target = target
        self._forwarded = forwarded
        self._on_traffic = on_traffic
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen; raises ``OSError`` (e.g. address in use) leaving nothing behind."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.listen(128)
            sock.setblocking(False)
            self._server = await asyncio.start_server(self._handle, sock=sock)
        except BaseException:
            sock.close()
            raise

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def carrying(self) -> bool:
        """Whether an established connection still runs through this forwarder."""
        return bool(self._connections)

    def close(self) -> None:
        """Stop accepting; established connections continue (see module docstring)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def aclose(self) -> None:
        """Stop accepting and end every established connection."""
        self.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        ends = [writer]
        try:
            host, port = target = self.target
            if self.target == (self.address, self.port) or (self._forwarded and self._forwarded(self.target)):
                log.debug("forward %s:%d -> %s:%d is the gateway itself: reset", self.address, self.port, host, port)
                _reset(writer)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                log.debug("forward %s:%d -> %s:%d failed: %s", self.address, self.port, host, port, exc)
                _reset(writer)
                return
            ends.append(up_writer)
            counted = None
            if self._on_traffic is not None:
                report = self._on_traffic
                report(target, 1, SYN_BYTES)
                counted = lambda size: report(target, 1, size + HEADER_BYTES)  # noqa: E731
            await asyncio.gather(_pipe(reader, up_writer, counted), _pipe(up_reader, writer))
        finally:
            self._connections.discard(task)
            for end in ends:
                end.close()
