"""A simulated gateway node's netfilter: the ``iptables`` family of commands and the forwarders they start.

:class:`GatewayService` owns one :class:`~simulator.iptables_table.Netfilter` and keeps the forwarders equal
to what the nat table says: after every command, the ports whose outcome may have changed are resolved
again (:class:`~simulator.dnat.DnatIndex`) and forwarders are started, retargeted or stopped. What a
forwarder carries from a client is counted in the filter table (:mod:`simulator.iptables_counters`). Commands run
one at a time under a lock, like iptables' xtables lock. :data:`HANDLERS` is what the node's SSH server
dispatches to; ``nc`` works on every node, with or without a gateway service.
"""

from __future__ import annotations

import asyncio
import logging

from simulator.commands import CommandContext, CommandResult, Handler
from simulator.dnat import DnatIndex, dnat_destination
from simulator.forwarder import Forwarder
from simulator.iptables_command import execute, parse_command
from simulator.iptables_counters import count_forwarded
from simulator.iptables_output import save
from simulator.iptables_rules import VERSION, IptablesError
from simulator.iptables_table import Netfilter
from simulator.probe import nc
from simulator.restore import restore

log = logging.getLogger(__name__)


class GatewayService:
    """The nat/filter tables of one gateway node and a forwarder for every effective DNAT rule."""

    def __init__(self, listen_addresses: list[str]) -> None:
        self.listen_addresses = list(listen_addresses)
        self.netfilter = Netfilter()
        self.dnat = DnatIndex(self.netfilter)
        self.forwarders: dict[tuple[str, int], Forwarder] = {}
        # Forwarders whose rule is gone: they accept nothing, but their established connections live on until
        # the gateway stops (conntrack keeps a translated flow), and closing the gateway must end them too.
        self._retired: set[Forwarder] = set()
        self.listen_failures: dict[tuple[str, int], str] = {}
        self._lock = asyncio.Lock()

    def forwards(self) -> dict[tuple[str, int], tuple[str, int]]:
        """What is really being forwarded now: ``(listen address, port) -> (target ip, port)``."""
        return {key: fwd.target for key, fwd in self.forwarders.items()}

    async def iptables(self, argv: list[str]) -> CommandResult:
        """Run one ``iptables`` command line (``argv`` without the program name)."""
        async with self._lock:
            try:
                result = execute(self.netfilter, parse_command(argv))
            except IptablesError as exc:
                result = CommandResult(exc.exit_status, "", f"{exc}\n")
            await self._sync()
            return result

    async def iptables_restore(self, argv: list[str], stdin: bytes) -> CommandResult:
        async with self._lock:
            try:
                noflush = parse_restore_options(argv)
                result = restore(self.netfilter, stdin.decode(errors="replace"), noflush)
            except IptablesError as exc:
                result = CommandResult(exc.exit_status, "", f"{exc}\n")
            await self._sync()
            return result

    async def iptables_save(self, argv: list[str]) -> CommandResult:
        # without -t: the tables the kernel has, which iptables-nft makes on their first change
        tables: list[str] = [t for t in ("filter", "nat") if t in self.netfilter.written]
        args = iter(argv)
        for arg in args:
            if arg in ("-t", "--table"):
                tables = [next(args, "")]
            elif arg.startswith("--table="):
                tables = [arg.partition("=")[2]]
            elif arg not in ("-c", "--counters"):
                return CommandResult(2, "", f'iptables-save v1.8.9 (nf_tables): unknown option "{arg}"\n')
        if any(t not in self.netfilter.tables for t in tables):
            return CommandResult(1, "", f"iptables-save: Unable to initialize table '{tables[0]}'\n")
        return CommandResult(0, save(self.netfilter, tables))

    async def _sync(self) -> None:
        ports = self.dnat.apply_changes()
        if ports is None:
            ports = self.dnat.all_ports() | {port for _, port in self.forwarders}
        for port in sorted(ports):
            for address in self.listen_addresses:
                await self._reconcile(address, port)

    async def _reconcile(self, address: str, port: int) -> None:
        rule = self.dnat.resolve(address, port)
        key = (address, port)
        current = self.forwarders.get(key)
        if rule is None:
            self.listen_failures.pop(key, None)
            if current is not None:
                current.close()
                self._retired = {f for f in self._retired if f.carrying} | {current}
                del self.forwarders[key]
                log.info("gateway %s: forward of port %d stopped", address, port)
            return
        target = dnat_destination(rule, port)
        if current is not None:
            current.target = target
            return
        forwarder = Forwarder(address, port, target, forwarded=lambda t: t in self.forwarders, on_traffic=self._count)
        try:
            await forwarder.start()
        except OSError as exc:
            # The rule stays in the table, as in netfilter; only the forward cannot be made real.
            self.listen_failures[key] = str(exc)
            log.warning("gateway %s: cannot listen on port %d for DNAT to %s:%d: %s", address, port, *target, exc)
            return
        self.listen_failures.pop(key, None)
        self.forwarders[key] = forwarder
        log.info("gateway %s: forwarding port %d to %s:%d", address, port, *target)

    def _count(self, target: tuple[str, int], packets: int, size: int) -> None:
        count_forwarded(self.netfilter, target, packets, size)

    async def close(self) -> None:
        """Stop every forwarder and end its connections."""
        forwarders, self.forwarders = [*self.forwarders.values(), *self._retired], {}
        self._retired = set()
        await asyncio.gather(*(f.aclose() for f in forwarders))


def parse_restore_options(argv: list[str]) -> bool:
    """``iptables-restore`` options; returns whether ``--noflush`` was given."""
    noflush = False
    args = iter(argv)
    for arg in args:
        if arg in ("-n", "--noflush"):
            noflush = True
        elif arg.isdigit() or arg in ("-w", "--wait", "-W", "--wait-interval", "-c", "--counters", "-v"):
            continue
        else:
            raise IptablesError(
                f'{VERSION.replace("iptables", "iptables-restore")}: unknown option "{arg}"\n'
                "Try `iptables-restore -h' or 'iptables-restore --help' for more information.",
                2,
            )
    return noflush


def _service(ctx: CommandContext, name: str) -> GatewayService | None:
    if ctx.user != "root":  # /usr/sbin is on root's PATH only (Debian): an ordinary user's shell finds nothing
        return None
    service = ctx.services.get("gateway")
    if isinstance(service, GatewayService):
        return service
    log.debug("%s called on a node without a gateway service", name)
    return None


def _not_found(name: str) -> CommandResult:
    return CommandResult(127, "", f"bash: line 1: {name}: command not found\n")


async def _iptables(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    service = _service(ctx, "iptables")
    return _not_found("iptables") if service is None else await service.iptables(argv[1:])


async def _iptables_restore(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    service = _service(ctx, "iptables-restore")
    return _not_found("iptables-restore") if service is None else await service.iptables_restore(argv[1:], stdin)


async def _iptables_save(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    service = _service(ctx, "iptables-save")
    return _not_found("iptables-save") if service is None else await service.iptables_save(argv[1:])


HANDLERS: dict[str, Handler] = {
    "iptables": _iptables,
    "iptables-restore": _iptables_restore,
    "iptables-save": _iptables_save,
    "nc": nc,
}
