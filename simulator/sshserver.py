"""A node's SSH daemon: asyncssh with public-key login, OpenSSH's MaxSessions, exec requests only.

Each accepted exec request is handed to the node's :class:`~simulator.dispatch.Dispatcher`. The
11th concurrent channel on one connection is refused the way OpenSSH refuses it
("administratively prohibited: open failed"). Stopping the daemon (node down) closes the listener, so
new connections are refused, and aborts the open connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncssh

from simulator.dispatch import Dispatcher, DroppedConnection

log = logging.getLogger(__name__)


class _CountedProcess(asyncssh.SSHServerProcess[bytes]):
    def __init__(
        self, factory: Callable[[asyncssh.SSHServerProcess[bytes]], object], on_close: Callable[[], None]
    ) -> None:
        super().__init__(factory, None, 0, False)  # type: ignore[arg-type]
        self._on_close: Callable[[], None] | None = on_close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
        super().connection_lost(exc)


class _Server(asyncssh.SSHServer):
    def __init__(self, daemon: SSHDaemon) -> None:
        self._daemon = daemon
        self._conn: asyncssh.SSHServerConnection | None = None
        self._sessions = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._daemon.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._daemon.connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username in self._daemon.login_users and key.public_data in self._daemon.authorized

    def session_requested(self) -> tuple[asyncssh.SSHServerChannel[bytes], asyncssh.SSHServerSession[bytes]]:
        assert self._conn is not None
        if self._sessions >= self._daemon.max_sessions:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "open failed")
        self._sessions += 1
        chan = self._conn.create_server_channel(encoding=None)
        return chan, _CountedProcess(self._daemon.handle, self._session_closed)

    def _session_closed(self) -> None:
        self._sessions -= 1


class SSHDaemon:
    """The sshd of one simulated node, on one or more of its addresses, all on the same port."""

    def __init__(
        self,
        *,
        node_name: str,
        addresses: list[str],
        port: int,
        host_key: asyncssh.SSHKey,
        authorized: list[asyncssh.SSHKey],
        login_users: set[str],
        dispatcher: Dispatcher,
        max_sessions: int = 10,
    ) -> None:
        self.node_name = node_name
        self.addresses = addresses
        self.port = port
        self.host_key = host_key
        self.authorized = {k.public_data for k in authorized}
        self.login_users = login_users
        self.dispatcher = dispatcher
        self.max_sessions = max_sessions
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self._acceptors: list[asyncssh.SSHAcceptor] = []

    @property
    def running(self) -> bool:
        return bool(self._acceptors)

    async def start(self) -> None:
        for address in self.addresses:
            acceptor = await asyncssh.create_server(
                lambda: _Server(self),
                address,
                self.port,
                server_host_keys=[self.host_key],
                reuse_address=True,
                allow_scp=False,
                agent_forwarding=False,
                x11_forwarding=False,
                keepalive_interval=0,
            )
            if self.port == 0:
                self.port = acceptor.sockets[0].getsockname()[1]
            self._acceptors.append(acceptor)
        log.info("node %s: sshd on %s port %d", self.node_name, ",".join(self.addresses), self.port)

    async def stop(self) -> None:
        acceptors, self._acceptors = self._acceptors, []
        for acceptor in acceptors:
            acceptor.close()
        for conn in list(self.connections):
            conn.abort()
        for acceptor in acceptors:
            await acceptor.wait_closed()
        self.connections.clear()

    async def handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        login = process.get_extra_info("username") or ""
        if command is None:
            process.stderr.write(b"This simulated node accepts commands only, no interactive shell.\n")
            process.exit(1)
            return

        async def read_stdin() -> bytes:
            return await process.stdin.read()

        try:
            result = await self.dispatcher.run(command, login, read_stdin)
        except DroppedConnection:
            log.info("node %s: dropping connection during %r", self.node_name, command)
            process.get_extra_info("connection").abort()
            return
        except (asyncssh.Error, ConnectionError, asyncio.IncompleteReadError):
            return
        try:
            if result.stdout:
                process.stdout.write(result.stdout.encode())
            if result.stderr:
                process.stderr.write(result.stderr.encode())
            if result.signal is not None:
                # sshd reports a command killed by a signal as an exit signal (the login shell exec'd it)
                process.exit_with_signal(result.signal)
            else:
                process.exit(result.exit_status)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            return
