"""SSH transport to cluster nodes: one kept-open asyncssh connection per node, reused for every command.

Each :class:`SshNode` opens its connection lazily, shares it between concurrent commands, bounds the number
of channels open at once (OpenSSH refuses more than ``MaxSessions``, 10 by default), applies a timeout to
every command and checks host keys against the configured known_hosts (else the account's own
``~/.ssh/known_hosts``), whatever the account's ``~/.ssh/config`` says: that file is never read. Failures
are reported as :class:`NodeUnreachable` (the command never reached the node: safe to retry elsewhere) or
:class:`CommandIndeterminate` (it may have run: the caller must find out before retrying).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncssh

from runner.config import SshSettings
from runner.errors import CommandIndeterminate, NodeUnreachable

log = logging.getLogger(__name__)

# A refused channel on a live connection is retried this often, waiting 20 ms, 40 ms, ... (1.3 s in all).
CHANNEL_OPEN_ATTEMPTS = 7
CHANNEL_RETRY_DELAY = 0.02


@dataclass(frozen=True)
class CommandOutput:
    """A finished command: what ran, where, and what it answered."""

    node: str
    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class CommandRunner(Protocol):
    """Something that runs an argument list on one node."""

    name: str

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput: ...

    async def close(self) -> None: ...


def _client_options(settings: SshSettings, user: str) -> dict[str, object]:
    options: dict[str, object] = {
        "username": user,
        "connect_timeout": settings.connect_timeout,
        # Always an explicit file: left unset, asyncssh would take UserKnownHostsFile from ~/.ssh/config, where
        # "none" turns host key checking off. That file is not read at all (config=None) for the same reason.
        "known_hosts": str(settings.known_hosts or Path("~/.ssh/known_hosts").expanduser()),
        "config": None,
        "keepalive_interval": 15,
        # AES-GCM first: hardware-accelerated, and cheaper per packet than chacha20-poly1305 in asyncssh.
        "encryption_algs": [
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
            "aes128-ctr",
            "aes256-ctr",
        ],
        "keepalive_count_max": 3,
    }
    if settings.client_keys:
        options["client_keys"] = [str(Path(k)) for k in settings.client_keys]
    return options


class SshNode:
    """A node reached over one shared SSH connection."""

    def __init__(self, host: str, port: int, user: str, settings: SshSettings) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.name = f"{user}@{host}:{port}"
        self._settings = settings
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connect_lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(settings.max_sessions)
        self.connects = 0  # how many connections were opened: a reused connection keeps this at 1
        self._connect_failures = 0
        self._last_connect_error = ""

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _connection(self, argv: list[str], failures_before: int) -> asyncssh.SSHClientConnection:
        async with self._connect_lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._connect_failures != failures_before:
                # A connect attempt failed while this command waited for the lock: a node that just timed out
                # would only time out again, once per queued command, so they all fail with it.
                raise NodeUnreachable(self.name, argv, f"cannot connect: {self._last_connect_error}")
            try:
                self._conn = await asyncssh.connect(
                    self.host,
                    self.port,
                    **_client_options(self._settings, self.user),
                )
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                self._conn = None
                self._connect_failures += 1
                self._last_connect_error = str(exc) or type(exc).__name__
                raise NodeUnreachable(self.name, argv, f"cannot connect: {exc}") from exc
            self.connects += 1
            log.info("ssh connected to %s", self.name)
            return self._conn

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.close()

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        """Run ``argv`` (joined with :func:`shlex.join`, so no word is ever reinterpreted by the remote shell)."""
        limit = timeout if timeout is not None else self._settings.command_timeout
        failures_before = self._connect_failures
        async with self._sessions:
            conn = await self._connection(argv, failures_before)
            command = shlex.join(argv)
            try:
                # asyncio.timeout, not wait_for: wait_for in 3.11 can swallow a cancellation that races completion.
                async with asyncio.timeout(limit):
                    result = await self._run_with_channel_retries(conn, command, stdin)
            except TimeoutError as exc:
                # The channel is gone with the task; the connection may be wedged, so start afresh next time.
                self._drop(conn)
                raise CommandIndeterminate(self.name, argv, f"no answer within {limit}s") from exc
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():
                    self._drop(conn)
                raise NodeUnreachable(self.name, argv, f"channel refused: {exc.reason}") from exc
            except (asyncssh.Error, OSError) as exc:
                self._drop(conn)
                raise CommandIndeterminate(self.name, argv, f"connection lost: {exc}") from exc
        if result.exit_status is None:
            # The channel closed without an exit status: the connection died under the command.
            self._drop(conn)
            raise CommandIndeterminate(self.name, argv, "channel closed without an exit status")
        status = result.exit_status
        out = result.stdout if isinstance(result.stdout, str) else ""
        err = result.stderr if isinstance(result.stderr, str) else ""
        log.debug("%s: %s -> %d", self.name, argv[0] if argv else "", status)
        return CommandOutput(self.name, tuple(argv), status, out, err)

    async def _run_with_channel_retries(
        self, conn: asyncssh.SSHClientConnection, command: str, stdin: str | None
    ) -> asyncssh.SSHCompletedProcess:
        """Open the channel, retrying briefly when sshd refuses it on a live connection.

        OpenSSH counts a session against ``MaxSessions`` until it has processed the channel's close, so a
        burst can meet a refusal although fewer channels are open on our side; the command never started,
        so opening again is safe. A refusal that persists is reported as the node being unreachable.
        """
        for attempt in range(CHANNEL_OPEN_ATTEMPTS):
            try:
                return await self._run_process(conn, command, stdin)
            except asyncssh.ChannelOpenError:
                if conn.is_closed() or attempt == CHANNEL_OPEN_ATTEMPTS - 1:
                    raise
                log.debug("%s: channel refused, retrying (%d)", self.name, attempt + 1)
                await asyncio.sleep(CHANNEL_RETRY_DELAY * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _run_process(
        conn: asyncssh.SSHClientConnection, command: str, stdin: str | None
    ) -> asyncssh.SSHCompletedProcess:
        process = await conn.create_process(command)
        if stdin is not None:
            try:
                process.stdin.write(stdin)
                process.stdin.write_eof()
            except BrokenPipeError:
                # The command ended without reading its input (sudo refused, sbatch rejected an option):
                # its exit status and error text still follow, and the connection is fine.
                log.debug("%s: %s stopped reading its input", conn.get_extra_info("peername"), command[:40])
        return await process.wait(check=False)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()


class OneShotSshNode(SshNode):
    """A new SSH connection for every command: the baseline the benchmarks compare the shared connection with."""

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        # A private node per command: concurrent commands must not share (and close) each other's connection.
        # The same bound on commands in flight applies as for the shared connection; only reuse differs.
        fresh = SshNode(self.host, self.port, self.user, self._settings)
        async with self._sessions:
            try:
                return await fresh.run(argv, stdin, timeout)
            finally:
                self.connects += fresh.connects
                await fresh.close()
