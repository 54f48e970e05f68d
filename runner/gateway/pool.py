"""The runner's gateways: one kept-open SSH node each, health, least-loaded choice, and batched rule edits.

A gateway whose command cannot be delivered (:class:`~runner.errors.NodeUnreachable`) or whose answer was lost
(:class:`~runner.errors.CommandIndeterminate`) is marked down: until ``down_retry_after`` seconds have passed
:meth:`GatewayPool.choose` skips it and its commands fail at once without touching the network (a stopped
host would make each of them wait for a connect timeout); its next successful command marks it healthy again.
A bounded probe that runs out of time on the gateway (:class:`ProbeTimedOut`) leaves it healthy: it answered.

Load is the number of forwards per gateway: those recorded in etcd (refreshed by the keyhole watcher through
:meth:`GatewayPool.set_load`) plus this process's choices not yet visible there. A choice is counted the moment
it is made, so a burst of concurrent requests spreads as evenly as requests arriving one by one.

Rule additions to one gateway are coalesced: while one ``iptables-restore --noflush`` runs, new requests
queue up and go out together in the next one, so a burst of requests costs a few SSH calls, not one each,
and each call's cost does not grow with the rules already present.

With :attr:`GatewayPool.accounting` on (idle sessions), each forward also gets a counting rule in the filter
table (:data:`~runner.gateway.iptables.ACCOUNTING_CHAIN`), written in the same restore as its nat rules, listed by
:meth:`GatewayPool.current` so cleanup removes it with them, and read with its counters by
:meth:`GatewayPool.counters`: one command per gateway, whatever the number of forwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runner.errors import (
    CommandIndeterminate,
    CounterParseError,
    GatewayCommandFailed,
    GatewayOutputInvalid,
    GatewayUnavailable,
    NodeUnreachable,
    ProbeTimedOut,
)
from runner.gateway import commands
from runner.gateway.access import SUDO_IPTABLES, SUDO_IPTABLES_RESTORE, GatewayAccess, SudoIptables
from runner.gateway.iptables import (
    DNAT_CHAIN,
    SNAT_CHAIN,
    Counted,
    ForwardRule,
    parse_counters,
    parse_forward_rules,
    parse_masquerade_rules,
)
from runner.ssh import CommandOutput, CommandRunner

log = logging.getLogger(__name__)

__all__ = ["SUDO_IPTABLES", "SUDO_IPTABLES_RESTORE", "Gateway", "GatewayPool"]

RESOLVE_TTL = 60.0  # seconds a gateway's answer for a compute hostname is reused
PROBE_SSH_SLACK = 5.0
"""Seconds a bounded probe's SSH command may take beyond its deadline before the gateway counts as not answering."""


@dataclass(eq=False)
class Gateway:
    """One gateway: SSH at ``internal_ip``, users connect to ``external_ip``."""

    runner: CommandRunner
    internal_ip: str
    external_ip: str
    down_until: float = 0.0
    chains_ready: bool = False
    accounting_ready: bool = False
    accounting_retry_at: float = 0.0
    queue: list[tuple[list[ForwardRule], asyncio.Future[None]]] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None
    setup_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class CurrentRules:
    """What one gateway's chains hold now."""

    dnat: list[ForwardRule]
    masquerade: list[ForwardRule]
    accounting: list[ForwardRule] = field(default_factory=list)
    """Counting rules (external port 1: the rule has none); listed only with accounting on."""


class GatewayPool:
    """All configured gateways; the single place the runner runs gateway commands."""

    def __init__(
        self,
        gateways: list[Gateway],
        *,
        down_retry_after: float,
        clock: Callable[[], float] = time.monotonic,
        access: GatewayAccess | None = None,
    ) -> None:
        """``access`` says how rule edits get root (:mod:`runner.gateway.access`); bwVisu's sudo iptables by default."""
        self.gateways = gateways
        self.access: GatewayAccess = access or SudoIptables()
        self.by_ip = {g.internal_ip: g for g in gateways}
        self.load: dict[str, int] = {g.internal_ip: 0 for g in gateways}
        self._retry_after = down_retry_after
        self._clock = clock
        self.restore_calls = 0
        # job id -> (gateway, forwards, when chosen): choices etcd may not show yet
        self._inflight: dict[str, tuple[str, int, float]] = {}
        # (gateway, hostname) -> (address, when resolved): compute hosts keep their addresses, so a
        # keyhole request usually needs no ``getent`` call of its own
        self._resolved: dict[tuple[str, str], tuple[str, float]] = {}
        self.resolve_ttl = RESOLVE_TTL
        self.accounting = False
        """Whether forwards get counting rules (idle sessions); set before the first forward is written."""

    def healthy(self) -> list[Gateway]:
        now = self._clock()
        return [g for g in self.gateways if g.down_until <= now]

    def up(self) -> int:
        return len(self.healthy())

    def health(self) -> dict[str, bool]:
        """Each gateway's internal address: whether it is not marked down."""
        return {g.internal_ip: not self.is_down(g) for g in self.gateways}

    def is_down(self, gateway: Gateway) -> bool:
        return gateway.down_until > self._clock()

    def choose(self, job_id: str, exclude: Sequence[Gateway] = (), weight: int = 1) -> Gateway:
        """The least-loaded healthy gateway (configuration order breaks ties) for ``job_id``'s ``weight`` forwards.

        The choice counts at once (until :meth:`release` or until etcd shows the job's forwards), so concurrent
        requests never all see the same least-loaded gateway.
        """
        candidates = [g for g in self.healthy() if g not in exclude]
        if not candidates:
            raise GatewayUnavailable(internal=f"all {len(self.gateways)} gateways down or excluded")
        self.release(job_id)
        chosen = min(candidates, key=lambda g: self.load.get(g.internal_ip, 0))
        self._inflight[job_id] = (chosen.internal_ip, weight, self._clock())
        self.load[chosen.internal_ip] = self.load.get(chosen.internal_ip, 0) + weight
        return chosen

    def release(self, job_id: str) -> None:
        """Forget ``job_id``'s choice (its placement failed)."""
        gone = self._inflight.pop(job_id, None)
        if gone is not None:
            self.load[gone[0]] = self.load.get(gone[0], 0) - gone[1]

    def set_load(self, placed: Sequence[tuple[str, str]], *, forget_after: float = 300.0) -> None:
        """Refresh load from etcd's ``(job id, gateway)`` placements, keeping this process's newer choices."""
        counts = {g.internal_ip: 0 for g in self.gateways}
        seen: set[tuple[str, str]] = set()
        for job_id, ip in placed:
            counts[ip] = counts.get(ip, 0) + 1
            seen.add((job_id, ip))
        now = self._clock()
        for job_id, (ip, weight, since) in list(self._inflight.items()):
            if (job_id, ip) in seen or now - since > forget_after:
                del self._inflight[job_id]  # etcd shows it now (or its request died long ago)
            else:
                counts[ip] = counts.get(ip, 0) + weight
        self.load = counts

    async def run(
        self, gateway: Gateway, argv: list[str], stdin: str | None = None, *, timeout: float | None = None
    ) -> CommandOutput:
        """Run on ``gateway``; transport failures mark it down and become :class:`GatewayUnavailable`.

        While it is marked down, commands fail at once. ``timeout`` replaces the SSH command timeout.
        """
        if self.is_down(gateway):
            raise GatewayUnavailable(internal=f"{gateway.internal_ip}: marked down; retried after a pause")
        try:
            out = await gateway.runner.run(argv, stdin, timeout)
        except (NodeUnreachable, CommandIndeterminate) as exc:
            if not self.is_down(gateway):
                log.warning("gateway %s marked down: %s", gateway.internal_ip, exc.reason)
            gateway.down_until = self._clock() + self._retry_after
            gateway.chains_ready = gateway.accounting_ready = False
            raise GatewayUnavailable(internal=f"{gateway.internal_ip}: {exc.reason}") from exc
        if gateway.down_until > 0:
            log.info("gateway %s healthy again", gateway.internal_ip)
            gateway.down_until = 0.0
        return out

    async def _checked(self, gateway: Gateway, argv: list[str], stdin: str | None = None) -> CommandOutput:
        out = await self.run(gateway, argv, stdin)
        if not out.ok:
            raise GatewayCommandFailed(
                internal=f"{gateway.internal_ip}: {argv[:4]} exit {out.exit_status}: {out.stderr.strip()[:300]}"
            )
        return out

    async def ensure_chains(self, gateway: Gateway) -> None:
        """Create the runner's chains and their jumps if missing; never flushes rules already there."""
        async with gateway.setup_lock:
            if not gateway.chains_ready:
                for check, create in self.access.setup_steps():
                    await self._ensure(gateway, check, create)
                gateway.chains_ready = True
            if self.accounting and not gateway.accounting_ready and gateway.accounting_retry_at <= self._clock():
                await self._ensure_accounting(gateway)

    async def _ensure_accounting(self, gateway: Gateway) -> None:
        """The counting chain; a gateway that refuses it (e.g. an older site helper) still gets its forwards,
        without counting rules, and is asked again after ``down_retry_after`` seconds."""
        try:
            for check, create in self.access.accounting_setup_steps():
                await self._ensure(gateway, check, create)
        except GatewayCommandFailed as exc:
            gateway.accounting_retry_at = self._clock() + self._retry_after
            log.warning("gateway %s: no counting chain, forwards are not counted: %s", gateway.internal_ip, exc)
            return
        gateway.accounting_ready = True

    async def _ensure(self, gateway: Gateway, check: list[str] | None, create: list[str]) -> None:
        if check is None:
            await self._checked(gateway, create)
            return
        if (await self.run(gateway, check)).ok:
            return
        created = await self.run(gateway, create)
        # another runner process may have created it in between: check again before failing
        if not created.ok and not (await self.run(gateway, check)).ok:
            raise GatewayCommandFailed(internal=f"{gateway.internal_ip}: {create}: {created.stderr.strip()[:300]}")

    async def install(self, gateway: Gateway, rules: list[ForwardRule]) -> None:
        """Add ``rules`` (coalesced with other pending additions into one ``iptables-restore``)."""
        await self.ensure_chains(gateway)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gateway.queue.append((rules, done))
        if gateway.flusher is None or gateway.flusher.done():
            gateway.flusher = asyncio.create_task(self._flush(gateway), name=f"gateway-flush:{gateway.internal_ip}")
        await asyncio.shield(done)

    async def _flush(self, gateway: Gateway) -> None:
        while gateway.queue:
            batch, gateway.queue = gateway.queue, []
            rules = [r for rs, _ in batch for r in rs]
            try:
                self.restore_calls += 1
                counted = rules if self.accounting and gateway.accounting_ready else ()
                text = commands.edit_input(add=rules, add_accounting=counted)
                await self._checked(gateway, self.access.restore_argv(), text)
            except Exception as exc:  # handed to every waiter of the batch
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def current(self, gateway: Gateway) -> CurrentRules:
        """The runner's rules on ``gateway`` now (two ``iptables -S`` listings; a third with accounting on)."""
        await self.ensure_chains(gateway)
        dnat = await self._checked(gateway, self.access.list_argv(DNAT_CHAIN))
        masq = await self._checked(gateway, self.access.list_argv(SNAT_CHAIN))
        masquerade = [ForwardRule(job, 1, ip, port) for job, ip, port in parse_masquerade_rules(masq.stdout)]
        counting = [c.rule for c in await self.counters(gateway)] if gateway.accounting_ready else []
        return CurrentRules(parse_forward_rules(dnat.stdout), masquerade, counting)

    async def counters(self, gateway: Gateway) -> list[Counted]:
        """The accounting chain's rules on ``gateway`` with their counters: one command.

        Output that does not read as counters raises :class:`GatewayOutputInvalid` (the gateway stays healthy).
        """
        await self.ensure_chains(gateway)
        if not gateway.accounting_ready:
            raise GatewayCommandFailed(internal=f"{gateway.internal_ip}: no counting chain (see the earlier warning)")
        out = await self._checked(gateway, self.access.counters_argv())
        try:
            return parse_counters(out.stdout)
        except CounterParseError as exc:
            raise GatewayOutputInvalid(internal=f"{gateway.internal_ip}: counters: {exc}") from None

    async def edit(
        self,
        gateway: Gateway,
        *,
        add: Sequence[ForwardRule] = (),
        delete_dnat: Sequence[ForwardRule] = (),
        delete_masquerade: Sequence[ForwardRule] = (),
        add_accounting: Sequence[ForwardRule] = (),
        delete_accounting: Sequence[ForwardRule] = (),
    ) -> None:
        """One restore transaction; delete only rules just listed by :meth:`current` (all or nothing).

        Counting rules are added only as ``add_accounting`` says (the idle sweep keeps them equal to the forwards).
        """
        if not (add or delete_dnat or delete_masquerade or add_accounting or delete_accounting):
            return
        self.restore_calls += 1
        text = commands.edit_input(
            add=add,
            delete_dnat=delete_dnat,
            delete_masquerade=delete_masquerade,
            add_accounting=add_accounting,
            delete_accounting=delete_accounting,
        )
        await self._checked(gateway, self.access.restore_argv(), text)

    async def resolve(self, gateway: Gateway, names: Sequence[str]) -> dict[str, str]:
        """Hostnames to IPv4 addresses as the gateway resolves them; unresolvable names are missing.

        Answers are reused for ``resolve_ttl`` seconds; only names not known (or known too long) are asked.
        """
        now = self._clock()
        known: dict[str, str] = {}
        for name in names:
            hit = self._resolved.get((gateway.internal_ip, name))
            if hit is not None and now - hit[1] <= self.resolve_ttl:
                known[name] = hit[0]
        ask = [n for n in dict.fromkeys(names) if n not in known]
        if ask:
            out = await self.run(gateway, commands.resolve_argv(ask))
            found = commands.parse_ahostsv4(out.stdout, ask)
            for name, address in found.items():
                self._resolved[(gateway.internal_ip, name)] = (address, now)
            known.update(found)
        return {n: known[n] for n in names if n in known}

    async def probe(
        self, gateway: Gateway, targets: Sequence[tuple[str, int]], *, deadline: float | None = None
    ) -> set[tuple[str, int]]:
        """Which ``(ip, port)`` accept connections, seen from ``gateway``: one command for all of them.

        Without ``deadline`` the hosts are probed one after another (the readiness sweep). With it they are
        probed at once and the gateway ends the probe after ``deadline`` seconds: then :class:`ProbeTimedOut`
        is raised and the gateway stays healthy, since it answered; a probe that failed otherwise raises
        :class:`GatewayCommandFailed`. The SSH command timeout becomes ``deadline`` + :data:`PROBE_SSH_SLACK`;
        a gateway that does not answer even then is marked down.
        """
        if not targets:
            return set()
        if deadline is None:
            out = await self.run(gateway, commands.probe_argv(targets))
            return commands.parse_probe(out.stderr)
        argv = commands.request_probe_argv(targets, deadline=deadline)
        out = await self.run(gateway, argv, timeout=deadline + PROBE_SSH_SLACK)
        if out.exit_status in commands.TIMED_OUT_STATUSES:
            raise ProbeTimedOut(internal=f"{gateway.internal_ip}: {len(targets)} targets not probed within {deadline}s")
        if not out.ok:  # the script ends in ``wait`` (status 0): anything else means the probe itself failed
            raise GatewayCommandFailed(
                "the gateway could not check the ports",
                internal=f"{gateway.internal_ip}: probe exit {out.exit_status}: {out.stderr.strip()[:300]}",
            )
        return commands.parse_probe(out.stderr)

    async def close(self) -> None:
        for gateway in self.gateways:
            if gateway.flusher is not None:
                await asyncio.gather(gateway.flusher, return_exceptions=True)
            await gateway.runner.close()
