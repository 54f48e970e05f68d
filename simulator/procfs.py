"""``cat`` of the few kernel files the runner reads, as a node's ``/proc`` shows them.

A node's files are ``services["procfs"]`` (path -> text), :data:`DEFAULT` unless a test sets its own. The default
ephemeral port range sits below the runner's default ``keyholed-port-range`` (50000-60000), as a site sets it
(Linux's own default, 32768-60999, overlaps it: see ``runner check``'s ``ephemeral-ports``).
"""

from __future__ import annotations

from simulator.commands import CommandContext, CommandResult

PROCFS = "procfs"
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
DEFAULT: dict[str, str] = {EPHEMERAL_RANGE: "32768\t49999\n"}


async def cat_command(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """``cat FILE...``: the known files' text; coreutils' message and status 1 for any other; no file: stdin."""
    if len(argv) == 1:
        return CommandResult(0, stdin.decode(errors="replace"))
    files: dict[str, str] = ctx.services.get(PROCFS, DEFAULT)
    out, err = [], []
    for path in argv[1:]:
        if path in files:
            out.append(files[path])
        else:
            err.append(f"cat: {path}: No such file or directory\n")
    return CommandResult(1 if err else 0, "".join(out), "".join(err))
