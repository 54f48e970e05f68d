"""The interface between a simulated node's SSH server and the commands it answers.

A command line arriving over SSH is split with ``shlex`` (never run by a shell), an optional
``sudo -n -u USER`` prefix is unwrapped, and the first word picks a :data:`Handler` registered for the
node's roles. Handlers are plain async functions, so Slurm, iptables and probe commands live in their
own modules and are tested without SSH.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandResult:
    """What a command returns to the SSH channel."""

    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class CommandContext:
    """Where and as whom a command runs.

    ``node`` is the simulated node object answering; ``user`` the effective user after ``sudo``;
    ``resolve`` maps a hostname (or address) to the loopback address of that simulated host, raising
    ``KeyError`` for an unknown name; ``services`` holds per-node state objects keyed by role
    (e.g. ``"gateway"`` -> the node's iptables table and forwarders).
    """

    node: Any
    user: str
    resolve: Callable[[str], str]
    services: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[CommandContext, list[str], bytes], Awaitable[CommandResult]]
"""``handler(ctx, argv, stdin) -> CommandResult``; ``argv[0]`` is the command name."""
