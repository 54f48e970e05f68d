"""``nc -z``: a real TCP connect probe, answering like netcat-openbsd (Debian) does.

``nc -z [-v] [-w SECS] HOST PORT[-PORT] [PORT...]`` connects to each port in turn (concurrently here, so a
batch of ports costs one timeout, never one per port), prints netcat-openbsd's ``-v`` lines on stderr in
port order and exits 0 when at least one port accepted, 1 otherwise. HOST goes through the cluster's name
resolution first and is used as a literal IPv4 address if the cluster does not know it.

A host the fault knobs silence (:meth:`simulator.faults.Faults.silence_host`) answers no connect: each of its
ports times out after ``-w`` seconds, one port after another, as netcat-openbsd tries them, so probing P ports
of such a host costs P timeouts, as it does on a real network behind a dropping firewall.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
from dataclasses import dataclass, field

from simulator.commands import CommandContext, CommandResult

DEFAULT_TIMEOUT = 30.0
"""Without ``-w`` real nc waits for the kernel; bounded here so a wedged probe never hangs the simulator."""
MAX_PORTS = 65536
MAX_CONCURRENT = 256
"""Probes in flight per command: a port range must not exhaust file descriptors."""
_USAGE = "usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] [-M ttl]\n"


def _service(port: int) -> str:
    try:
        return socket.getservbyport(port, "tcp")
    except OSError:
        return "*"


async def probe_port(address: str, port: int, timeout: float) -> str | None:
    """Connect once; ``None`` when the port accepted, else the failure as nc words it."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except TimeoutError:
        return f"timed out: {os.strerror(errno.EINPROGRESS)}"
    except OSError as exc:
        # asyncio rewrites strerror ("Connect call failed ..."); nc prints the errno's own text
        return f"failed: {os.strerror(exc.errno) if exc.errno else exc}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _ports(spec: str) -> list[int]:
    low, sep, high = spec.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise ValueError(spec)
    first, last = int(low), int(high) if sep else int(low)
    if not (0 < first <= last <= 65535):
        raise ValueError(spec)
    return list(range(first, last + 1))


def _error(message: str) -> CommandResult:
    return CommandResult(1, "", f"nc: {message}\n")


class _Refused(Exception):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.stderr)
        self.result = result


@dataclass
class _Options:
    verbose: bool = False
    timeout: float = DEFAULT_TIMEOUT
    host: str = ""
    ports: list[int] = field(default_factory=list)


def _parse(argv: list[str]) -> _Options:
    """netcat-openbsd's options as far as ``-z`` probing needs them (``-n`` is accepted and implied)."""
    opts, zero, rest = _Options(), False, list[str]()
    args = iter(argv)
    for arg in args:
        if not (arg.startswith("-") and len(arg) > 1 and not rest):
            rest.append(arg)
            continue
        for pos, flag in enumerate(arg[1:], start=1):
            if flag == "w":
                value = arg[pos + 1 :] or next(args, "")
                if not value.isdigit():
                    raise _Refused(_error(f"timeout {value} is invalid"))
                opts.timeout = float(value)
                break
            if flag not in "zvn":
                raise _Refused(CommandResult(1, "", f"nc: invalid option -- '{flag}'\n{_USAGE}"))
            zero, opts.verbose = zero or flag == "z", opts.verbose or flag == "v"
    if not zero:
        raise _Refused(_error("only -z (port scan) is simulated"))
    if len(rest) < 2:
        raise _Refused(CommandResult(1, "", _USAGE))
    opts.host = rest[0]
    try:
        opts.ports = [p for spec in rest[1:] for p in _ports(spec)][:MAX_PORTS]
    except ValueError as exc:
        raise _Refused(_error(f"port number invalid: {exc}")) from None
    return opts


async def nc(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """The ``nc`` handler (registered on every node)."""
    del stdin
    try:
        opts = _parse(argv[1:])
    except _Refused as refused:
        return refused.result
    host, ports, timeout = opts.host, opts.ports, opts.timeout
    try:
        address = ctx.resolve(host)
    except KeyError:
        try:
            address = str(ipaddress.IPv4Address(host))
        except ValueError:
            return _error(f'getaddrinfo for host "{host}" port {ports[0]}: Name or service not known')
    if ctx.faults is not None and address in ctx.faults.silent:
        return await _silent(ctx, host, ports, timeout, verbose=opts.verbose)
    limit = asyncio.Semaphore(MAX_CONCURRENT)

    async def bounded(port: int) -> str | None:
        async with limit:
            return await probe_port(address, port, timeout)

    failures = await asyncio.gather(*(bounded(port) for port in ports))
    lines = []
    for port, failure in zip(ports, failures, strict=True):
        if failure is None:
            lines.append(f"Connection to {host} {port} port [tcp/{_service(port)}] succeeded!\n")
        else:
            lines.append(f"nc: connect to {host} port {port} (tcp) {failure}\n")
    stderr = "".join(lines) if opts.verbose else ""
    return CommandResult(0 if any(f is None for f in failures) else 1, "", stderr)


async def _silent(ctx: CommandContext, host: str, ports: list[int], timeout: float, *, verbose: bool) -> CommandResult:
    """A host that never answers: every port waits out the timeout, in turn, its line written as it ends."""
    lines = []
    for port in ports:
        await asyncio.sleep(timeout)
        line = f"nc: connect to {host} port {port} (tcp) timed out: {os.strerror(errno.EINPROGRESS)}\n"
        if verbose:
            lines.append(line)
            if ctx.streams is not None:  # a parent cut short (timeout) still shows the ports already tried
                ctx.streams.stderr.append(line)
    return CommandResult(1, "", "".join(lines))
