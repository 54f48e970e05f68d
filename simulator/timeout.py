"""coreutils' ``timeout [-s SIGNAL] DURATION COMMAND [ARG]...``, as Debian 12's coreutils 9.1 answers it.

The command runs through the node's own handlers. If it ends in time, its answer is timeout's. If not, it is
ended (with everything it started: a cancelled ``sh`` cancels its background jobs, as ``timeout`` signals its
whole process group) and timeout answers with the output written so far and:

* exit status 124 for any signal a process may ignore (``TERM``, the default, and the rest): timeout ignores
  the signal it sends its own group, so it lives to report the timeout;
* death by ``KILL`` for ``-s KILL``: timeout is in the group it kills. A shell reports that as 137
  (128 + 9); as an SSH command it is an exit signal, since the login shell exec'd timeout.

DURATION is a number with an optional ``s``/``m``/``h``/``d`` suffix; 0 disables the timeout. Bad usage exits
125 with coreutils' text; an unknown command 127. Other options (``-k``, ``--foreground``,
``--preserve-status``, ``-v``) are refused with 125, never half-simulated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal

from simulator.commands import CommandContext, CommandResult, Streams
from simulator.shell import handlers_of

TIMED_OUT = 124
CANCELED = 125  # coreutils' EXIT_CANCELED: timeout itself failed
_TRY = "Try 'timeout --help' for more information.\n"
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad usage: timeout exits 125 without running anything."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.result = CommandResult(CANCELED, "", f"{text}{_TRY}")


def parse_signal(name: str) -> signal.Signals:
    """A signal by number or name, with or without ``SIG``, in any case (as coreutils' ``str2sig``)."""
    try:
        return signal.Signals(int(name)) if name.isdigit() else signal.Signals[f"SIG{name.upper().removeprefix('SIG')}"]
    except (KeyError, ValueError):
        raise UsageError(f"timeout: '{name}': invalid signal\n") from None


def parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"timeout: invalid time interval '{text}'\n")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_options(argv: list[str]) -> tuple[signal.Signals, float, list[str]]:
    """(signal, seconds, command) from ``timeout``'s arguments (options end at the first operand, as getopt's ``+``)."""
    sig = signal.SIGTERM
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        arg = args.pop(0)
        if arg == "--":
            break
        if arg in ("-s", "--signal"):
            if not args:
                raise UsageError(f"timeout: option requires an argument -- '{arg.lstrip('-')[:1]}'\n")
            sig = parse_signal(args.pop(0))
        elif arg.startswith("--signal="):
            sig = parse_signal(arg.partition("=")[2])
        elif arg.startswith("-s"):
            sig = parse_signal(arg[2:])
        elif arg.startswith("--"):
            raise UsageError(f"timeout: option '{arg.partition('=')[0]}' is not simulated\n")
        else:
            raise UsageError(f"timeout: option '-{arg[1]}' is not simulated\n")
    if len(args) < 2:
        raise UsageError("")
    return sig, parse_duration(args[0]), args[1:]


async def timeout_command(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """``timeout``: run the command; end it after DURATION seconds."""
    try:
        sig, seconds, command = parse_options(argv[1:])
    except UsageError as usage:
        return usage.result
    handler = handlers_of(ctx).get(command[0])
    if handler is None:
        return CommandResult(127, "", f"timeout: failed to run command '{command[0]}': No such file or directory\n")
    streams = Streams()
    task: asyncio.Future[CommandResult] = asyncio.ensure_future(
        handler(dataclasses.replace(ctx, streams=streams), command, stdin)
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds or None)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task in done:
        return task.result()
    if sig is signal.SIGKILL:
        return streams.result(128 + signal.SIGKILL, signal="KILL")
    return streams.result(TIMED_OUT)
