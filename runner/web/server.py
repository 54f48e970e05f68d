"""Serving an ASGI app (the REST API or the keyhole listener) with uvicorn inside the caller's asyncio loop, so the
watchers can share it.

The listening socket is bound here, before uvicorn starts, so port 0 works and the bound port is known at once
(:attr:`ApiServer.port`). TLS is used when ``api.tls_cert`` and ``api.tls_key`` are configured. Signals are left
to the entry point (uvicorn's own handlers are never installed), and logging is never configured here.
Connections are bounded (:mod:`runner.web.connections`): a request's head must come within ``head_timeout``
seconds, and with ``per_client`` one address holds at most that many connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from runner.config import ApiSettings
from runner.web.connections import HEAD_TIMEOUT, bounded_protocol

# Seconds open requests get to finish once the server stops accepting; then their connections are closed.
GRACEFUL_SHUTDOWN = 10


class _Server(uvicorn.Server):
    """uvicorn's server, with an event for "accepting connections"; signals stay with the entry point."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class ApiServer:
    """One uvicorn server for ``app`` on ``settings.host``:``settings.port``; use as ``async with``."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ApiSettings,
        *,
        graceful_shutdown: int = GRACEFUL_SHUTDOWN,
        head_timeout: float = HEAD_TIMEOUT,
        per_client: int | None = None,
    ) -> None:
        tls = settings.tls_cert is not None and settings.tls_key is not None
        self.config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            http=bounded_protocol(head_timeout=head_timeout, per_client=per_client),
            server_header=False,
            timeout_graceful_shutdown=graceful_shutdown,
            ssl_certfile=str(settings.tls_cert) if tls else None,
            ssl_keyfile=str(settings.tls_key) if tls else None,
        )
        self.tls = tls
        self._server = _Server(self.config)
        self._socket = _bind(settings.host, settings.port)
        self.host = settings.host
        self.port: int = self._socket.getsockname()[1]
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL for clients on this machine (a wildcard host is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def serve(self) -> None:
        """Serve until :meth:`stop` or cancellation."""
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            self._socket.close()

    async def start(self) -> None:
        """Serve in a task and return once connections are accepted; raises if start-up failed."""
        self._task = asyncio.create_task(self.serve(), name=f"api-server:{self.port}")
        ready = asyncio.create_task(self._server.ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            await self._task  # re-raises the start-up error
            raise RuntimeError("the API server stopped during start-up")

    async def wait(self) -> None:
        """Until the server ends; cancelling the waiter does not stop the server (call :meth:`stop`)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def force_stop(self) -> None:
        """Stop at once: open connections are closed without waiting for their requests (a second signal)."""
        self._server.force_exit = True

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (at most ``graceful_shutdown`` seconds), wait for the end."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None
        self._socket.close()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
