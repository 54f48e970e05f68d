"""The interface between a simulated node's SSH server and the commands it answers.

A command line arriving over SSH is split with ``shlex`` (never run by a shell), an optional
``sudo -n -u USER`` prefix is unwrapped, and the first word picks a :data:`Handler` registered for the
node's roles. Handlers are plain async functions, so Slurm, iptables and probe commands live in their
own modules and are tested without SSH. Commands that run others (``sh -c``, ``timeout``) call the node's
handlers directly; a child's output reaches its parent's :class:`Streams` as the child ends, so a parent cut
short (``timeout``) still answers with what was written before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.faults import Faults


@dataclass(frozen=True)
class CommandResult:
    """What a command returns to the SSH channel."""

    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""
    signal: str | None = None
    """The signal that ended the process (SSH's name, e.g. ``KILL``), with ``exit_status`` 128 + its number as a
    shell reports it. Run as the SSH command itself it is sent as an exit signal, as sshd does when the login
    shell exec'd a process that was killed."""


@dataclass
class Streams:
    """Output written so far by the children of a command that runs others."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def write(self, result: CommandResult) -> None:
        self.stdout.append(result.stdout)
        self.stderr.append(result.stderr)

    def result(self, exit_status: int, signal: str | None = None) -> CommandResult:
        return CommandResult(exit_status, "".join(self.stdout), "".join(self.stderr), signal)


@dataclass
class CommandContext:
    """Where and as whom a command runs.

    ``node`` is the simulated node object answering; ``user`` the effective user after ``sudo``;
    ``resolve`` maps a hostname (or address) to the loopback address of that simulated host, raising
    ``KeyError`` for an unknown name; ``services`` holds per-node state objects keyed by role
    (e.g. ``"gateway"`` -> the node's iptables table and forwarders); ``faults`` the cluster's fault knobs (None
    outside a cluster); ``streams`` where a command that runs others writes each child's output as it ends
    (None: it keeps its own).
    """

    node: Any
    user: str
    resolve: Callable[[str], str]
    services: dict[str, Any] = field(default_factory=dict)
    faults: Faults | None = None
    streams: Streams | None = None
    sudo_user: str | None = None
    """Who ran ``sudo`` for this command (sudo's ``SUDO_USER``); None without sudo."""


Handler = Callable[[CommandContext, list[str], bytes], Awaitable[CommandResult]]
"""``handler(ctx, argv, stdin) -> CommandResult``; ``argv[0]`` is the command name."""
