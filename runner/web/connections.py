"""Bounds on the connections an HTTP listener holds, against a client that opens many and sends little.

uvicorn waits for a request's head without a deadline: a connection that sends half a request line and then
nothing is held until the client lets go, and a few thousand of them use up the process's file descriptors (the
REST API, SSH and etcd share them). The keyhole listener is reached from compute nodes, where every cluster user
runs code, so one hostile job could otherwise cost every other job its service (security model point 5).

:func:`bounded_protocol` makes uvicorn's h11 protocol class with two bounds:

* ``head_timeout``: a connection must complete each request's head within this many seconds of connecting or of
  its previous response; otherwise it is closed (uvicorn's keep-alive timeout alone is restarted by every byte).
* ``per_client``: at most this many connections at once from one client address; one more is closed at once,
  before anything is read, so a flood from one address leaves room for every other one.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 15.0
"""Seconds a connection gets to send a request's head."""


def bounded_protocol(*, head_timeout: float = HEAD_TIMEOUT, per_client: int | None = None) -> type[H11Protocol]:
    """An h11 protocol class for one listener; its per-client counts are shared by that listener's connections."""
    open_by_client: dict[str, int] = {}
    refused_clients: set[str] = set()  # logged once per flood, not once per connection

    class BoundedH11Protocol(H11Protocol):
        _counted: str | None = None
        _requests = 0
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            host = self.client[0] if self.client else "?"
            if per_client is not None and open_by_client.get(host, 0) >= per_client:
                if host not in refused_clients:
                    refused_clients.add(host)
                    log.warning(
                        "http listener %s: %s holds %d connections already; more are closed",
                        _where(self.server),
                        host,
                        per_client,
                    )
                transport.abort()
                return
            open_by_client[host] = open_by_client.get(host, 0) + 1
            self._counted = host
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            host, self._counted = self._counted, None
            if host is not None:
                left = open_by_client.get(host, 1) - 1
                if left > 0:
                    open_by_client[host] = left
                else:
                    open_by_client.pop(host, None)
                    refused_clients.discard(host)
            super().connection_lost(exc)

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's head arrived
                self._requests += 1
                if self._head_timer is not None:
                    self._head_timer.cancel()
                    self._head_timer = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()  # the next request's head, on a kept-alive connection

        def _await_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(head_timeout, self._head_late, self._requests)

        def _head_late(self, requests: int) -> None:
            if self._requests == requests and not self.transport.is_closing():
                log.debug(
                    "http listener %s: closing a connection from %s that sent no request head in time",
                    _where(self.server),
                    _where(self.client),
                )
                self.transport.close()

    return BoundedH11Protocol


def _where(address: tuple[str, int | None] | tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "?"
