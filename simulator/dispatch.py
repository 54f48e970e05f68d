"""From an SSH command line to a handler: shlex split, ``sudo -n -u USER`` unwrapping, the command log.

Nothing is ever run by a shell. Each node has a registry (command name -> :data:`Handler`) built from
its roles; an unknown name answers like bash (exit 127). Every call is appended to the
:class:`CommandLog`, which tests inspect to prove what did (and did not) reach a command.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from simulator.commands import CommandContext, CommandResult, Handler
from simulator.faults import FaultKind, Faults
from simulator.sudo import SudoError, SudoPolicy, unwrap_sudo
from simulator.users import UserDB

log = logging.getLogger(__name__)

StdinPredicate = Callable[[list[str]], bool]


@dataclass(frozen=True)
class CommandRecord:
    """One executed command: where, as whom (login and effective user), what, and how it ended."""

    node: str
    login_user: str
    user: str
    argv: tuple[str, ...]
    command_line: str
    stdin_size: int
    exit_status: int | None
    """None when the connection was dropped before an answer."""
    time: float
    duration: float

    @property
    def name(self) -> str:
        return self.argv[0] if self.argv else ""


class CommandLog:
    """Append-only record of every command any node ran."""

    def __init__(self) -> None:
        self._records: list[CommandRecord] = []

    def append(self, record: CommandRecord) -> None:
        self._records.append(record)

    def __iter__(self) -> Iterator[CommandRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def named(self, command: str) -> list[CommandRecord]:
        """Records whose (unwrapped) command is ``command``."""
        return [r for r in self._records if r.name == command]

    def clear(self) -> None:
        self._records.clear()


class DroppedConnection(Exception):
    """The fault knobs asked to cut the connection instead of answering."""


class Dispatcher:
    """Runs command lines for one node."""

    def __init__(
        self,
        *,
        node: object,
        node_name: str,
        handlers: dict[str, Handler],
        stdin_readers: dict[str, StdinPredicate],
        users: UserDB,
        sudo: SudoPolicy,
        resolve: Callable[[str], str],
        services: dict[str, object],
        command_log: CommandLog,
        faults: Faults,
        installed: dict[str, str] | None = None,
    ) -> None:
        """``sudo`` decides who may run what through sudo; ``installed`` maps extra programs' names to their paths."""
        self.node = node
        self.node_name = node_name
        self.handlers = handlers
        self.stdin_readers = stdin_readers
        self.users = users
        self.sudo = sudo
        self.installed = installed or {}
        self.resolve = resolve
        self.services = services
        self.log = command_log
        self.faults = faults

    async def run(
        self, command_line: str, login_user: str, read_stdin: Callable[[], Awaitable[bytes]]
    ) -> CommandResult:
        """Run one command line; raises :class:`DroppedConnection` when a fault cuts the connection."""
        started = time.time()
        try:
            argv = shlex.split(command_line)
        except ValueError:
            return CommandResult(2, "", "bash: -c: line 1: unexpected EOF while looking for matching quote\n")
        user = login_user
        via_sudo = argv[:1] == ["sudo"]
        try:
            argv, user = unwrap_sudo(argv, login_user, self.users, self.sudo, self.installed, self.node_name)
        except SudoError as exc:
            self._record(login_user, login_user, argv, command_line, 0, exc.result.exit_status, started)
            return exc.result
        if not argv:
            return CommandResult(0)
        name = argv[0]
        handler = self.handlers.get(name)
        stdin = b""
        predicate = self.stdin_readers.get(name)
        if handler is not None and predicate is not None and predicate(argv):
            stdin = await read_stdin()
        if handler is None:
            result = CommandResult(127, "", f"bash: {name}: command not found\n")
            self._record(login_user, user, argv, command_line, len(stdin), result.exit_status, started)
            return result
        delay, fault = self.faults.next_call(name, self.node_name)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None and fault.kind is FaultKind.FAIL:
            result = CommandResult(fault.exit_status, fault.stdout, fault.failure_text)
            self._record(login_user, user, argv, command_line, len(stdin), result.exit_status, started)
            return result
        if fault is not None and not fault.execute:
            self._record(login_user, user, argv, command_line, len(stdin), None, started)
            raise DroppedConnection(name)
        ctx = CommandContext(
            node=self.node,
            user=user,
            resolve=self.resolve,
            services=self.services,
            faults=self.faults,
            sudo_user=login_user if via_sudo else None,
        )
        try:
            result = await handler(ctx, argv, stdin)
        except Exception:
            log.exception("node %s: handler for %s failed", self.node_name, name)
            result = CommandResult(1, "", f"{name}: internal simulator error\n")
        dropped = fault is not None
        self._record(login_user, user, argv, command_line, len(stdin), None if dropped else result.exit_status, started)
        if dropped:
            raise DroppedConnection(name)
        log.debug("node %s user %s: %s -> %d", self.node_name, user, name, result.exit_status)
        return result

    def _record(  # noqa: PLR0917 - a private recorder with one call shape
        self, login: str, user: str, argv: list[str], line: str, size: int, status: int | None, started: float
    ) -> None:
        self.log.append(
            CommandRecord(self.node_name, login, user, tuple(argv), line, size, status, started, time.time() - started)
        )
