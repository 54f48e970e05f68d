"""``getent hosts`` and ``getent ahostsv4`` answered from the cluster's name resolution (``ctx.resolve``).

The runner resolves compute hostnames on a gateway (``getent ahostsv4 NAME...``) to write DNAT targets; the
output follows glibc: ``hosts`` prints ``ADDRESS<spaces>NAME`` per key, ``ahostsv4`` prints a ``STREAM`` line
with the canonical name and ``DGRAM``/``RAW`` lines per address. A key that does not resolve prints nothing
and makes the exit status 2. Other databases go to :func:`simulator.users.getent_command`.
"""

from __future__ import annotations

from simulator.commands import CommandContext, CommandResult
from simulator.users import getent_command as passwd_getent


def _lookup(ctx: CommandContext, key: str) -> str | None:
    try:
        return ctx.resolve(key)
    except KeyError:
        return None


async def getent_command(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """glibc ``getent`` for ``hosts``/``ahostsv4``; everything else as :mod:`simulator.users` answers it."""
    database = argv[1] if len(argv) > 1 else ""
    if database not in ("hosts", "ahostsv4") or len(argv) < 3:
        return await passwd_getent(ctx, argv, stdin)
    lines: list[str] = []
    status = 0
    for key in argv[2:]:
        address = _lookup(ctx, key)
        if address is None:
            status = 2
        elif database == "hosts":
            lines.append(f"{address:<15} {key}\n")
        else:
            lines += [f"{address:<15} STREAM {key}\n", f"{address:<15} DGRAM  \n", f"{address:<15} RAW    \n"]
    return CommandResult(status, "".join(lines))
