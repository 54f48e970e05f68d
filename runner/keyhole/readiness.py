"""The keyhole watcher: readiness and health of forwarded ports, cleanup of ended jobs, rule reconciliation.

One :meth:`KeyholeWatcher.tick` (run by a :class:`~runner.loops.Loop` under the watchers' leadership):

1. takes the active jobs from the runner's shared :class:`~runner.active.ActiveJobs` view (no etcd read when
   steady; records it hands out are never edited: :meth:`StateStore.update_job` changes a copy), reads every
   port reservation, and refreshes gateway load; a reservation whose job is not in the view is read once more
   (:meth:`KeyholeWatcher._still_active`) before it counts as ended;
2. cleanup: reservations of jobs that are no longer active lose their rules (deleted only after being listed
   on the gateway, as ``iptables-restore`` is all-or-nothing), then their etcd records;
3. readiness: one probe command per gateway checks every forward of jobs waiting to become available (and,
   every ``health_every`` ticks, of available jobs) with ``nc -z`` from the gateway to the compute host; a job
   becomes ``available`` as soon as a forward answers; an available job none of whose forwards answers stays
   ``available`` with ``reachable`` false and a ``keyhole-health`` note in its details;
4. every ``reconcile_every`` ticks (and on the first): each gateway's rules are compared with the placed
   reservations; stray rules go, missing ones come back. Reservations placed within ``placement_grace``
   seconds are left to the handler still writing their rule.

Before a target is probed or a rule written back, the stored forward is checked (:mod:`runner.keyhole.guard`):
one outside the port range, the job's own nodes or the compute networks is logged and not acted on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from runner.active import ActiveJobs
from runner.errors import RunnerError
from runner.gateway.iptables import ForwardRule
from runner.gateway.pool import CurrentRules, Gateway, GatewayPool
from runner.keyhole.claims import Claims
from runner.keyhole.guard import Target, TargetGuard, Verdict
from runner.keyhole.ports import PortBook, PortRecord, forward_rule
from runner.records import JobRecord, JobState
from runner.state import StateStore

log = logging.getLogger(__name__)

HEALTH_NOTE = "keyhole-health"
HEALTH_TEXT = "no forwarded port answers right now"
_WAITING = {JobState.SUBMITTED, JobState.RUNNING}


@dataclass
class SweepStats:
    probed: int = 0
    became_available: int = 0
    cleaned_jobs: int = 0
    strays_removed: int = 0
    missing_restored: int = 0


class KeyholeWatcher:
    def __init__(
        self,
        store: StateStore,
        ports: PortBook,
        claims: Claims,
        pool: GatewayPool,
        guard: TargetGuard,
        *,
        health_every: int = 8,
        reconcile_every: int = 200,
        placement_grace: float = 30.0,
        view: ActiveJobs | None = None,
    ) -> None:
        self._store = store
        self._view = view  # the runner's shared view: a steady tick then reads no job record
        self._ports = ports
        self._claims = claims
        self._pool = pool
        self._guard = guard
        self._health_every = max(health_every, 1)
        self._reconcile_every = max(reconcile_every, 1)
        self.placement_grace = placement_grace
        self.sweeps = 0
        self._reconciling = asyncio.Lock()  # a tick and a direct call must not both add a missing rule

    async def tick(self) -> SweepStats:
        stats = SweepStats()
        active = await (self._view.snapshot() if self._view else self._store.active_jobs())
        jobs = {record.job_id: (record, rev) for record, rev in active}
        records = await self._ports.held()  # kept by a watch; the reconciler reads afresh
        ended = [r for r in records if r.job_id not in jobs and not await self._still_active(r.job_id)]
        live = [r for r in records if r not in ended]
        self._pool.set_load([(r.job_id, r.gateway_ssh_ip) for r in live if r.gateway_ssh_ip])
        if ended:
            stats.cleaned_jobs = await self.cleanup(ended)
        await self._probe(jobs, health=self.sweeps % self._health_every == 0, stats=stats)
        if self.sweeps % self._reconcile_every == 0:
            await self.reconcile(stats)
        self.sweeps += 1
        return stats

    async def _still_active(self, job_id: str) -> bool:
        record = await self._store.get_job(job_id)  # created after the view's snapshot? then it is not ended
        return record is not None and record.active

    async def cleanup(self, ended: list[PortRecord]) -> int:
        """Remove the rules and reservations of ended jobs; a gateway that cannot be reached keeps them for later."""
        ended_jobs = {r.job_id for r in ended}
        done_gateways: set[str | None] = {None}
        for ip in sorted({r.gateway_ssh_ip for r in ended if r.gateway_ssh_ip}):
            gateway = self._pool.by_ip.get(ip)
            if gateway is None:
                done_gateways.add(ip)  # no longer configured: nothing to remove there
                continue
            if self._pool.is_down(gateway):
                continue  # kept for when it answers again; trying now would only fail
            try:
                current = await self._pool.current(gateway)
                await self._pool.edit(
                    gateway,
                    delete_dnat=[r for r in current.dnat if r.job_id in ended_jobs],
                    delete_masquerade=[r for r in current.masquerade if r.job_id in ended_jobs],
                    delete_accounting=[r for r in current.accounting if r.job_id in ended_jobs],
                )
            except RunnerError as exc:
                log.warning("keyhole: cleanup on gateway %s postponed: %s", ip, exc)
                continue
            done_gateways.add(ip)
        cleaned: set[str] = set()
        for record in ended:
            if record.gateway_ssh_ip in done_gateways:
                await self._ports.release(record.job_id, [record.port])
                cleaned.add(record.job_id)
        for job_id in cleaned:
            await self._claims.forget(job_id)
            log.info("keyhole: job %s ended; its forwards and ports are released", job_id)
        return len(cleaned)

    async def _probe(self, jobs: dict[str, tuple[JobRecord, int]], *, health: bool, stats: SweepStats) -> None:
        wanted = [
            (record, rev)
            for record, rev in jobs.values()
            if record.forwards and (record.state in _WAITING or (health and record.state is JobState.AVAILABLE))
        ]
        kept: dict[str, dict[tuple[str, int], Target]] = {}
        for record, _ in wanted:
            for f in record.forwards:
                kept.setdefault(f.gateway_ssh_ip, {})[(f.internal_ip, f.internal_port)] = Target(
                    record, f.internal_ip, f.internal_port
                )
        targets: dict[str, set[tuple[str, int]]] = {}
        for ip, found in kept.items():
            if ip in self._pool.by_ip:
                verdicts = await self._guard.judge(self._pool.by_ip[ip], list(found.values()))
                targets[ip] = {key for key, v in zip(found, verdicts, strict=True) if v is Verdict.OK}
        probed = [ip for ip in targets if targets[ip]]
        results = await asyncio.gather(
            *(self._pool.probe(self._pool.by_ip[ip], sorted(targets[ip])) for ip in probed), return_exceptions=True
        )
        open_now: dict[str, set[tuple[str, int]]] = {}
        for ip, result in zip(probed, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("keyhole: probe from gateway %s failed: %s", ip, result)
                continue
            open_now[ip] = result
            stats.probed += len(targets[ip])
        for record, rev in wanted:
            if not any(f.gateway_ssh_ip in open_now for f in record.forwards):
                continue
            stored = await self._store.update_job(record.job_id, _observe(open_now), known=(record, rev))
            if stored is not None and stored.state is JobState.AVAILABLE and record.state is not JobState.AVAILABLE:
                stats.became_available += 1

    async def reconcile(self, stats: SweepStats | None = None) -> None:
        """Make every reachable gateway's rules equal to the placed reservations of active jobs.

        Reservations are read per gateway *after* its rules are listed, never taken from the caller: a record is
        always saved before its rule is written, so a rule listed is explained by a record read after it.
        """
        stats = stats or SweepStats()
        async with self._reconciling:
            await self._reconcile_all(stats)

    async def _reconcile_all(self, stats: SweepStats) -> None:
        for gateway in self._pool.healthy():
            try:
                current = await self._pool.current(gateway)
                records = [r for r in await self._ports.all() if r.gateway_ssh_ip == gateway.internal_ip]
                jobs = {job.job_id: job for job, _ in await self._store.active_jobs()}
                settled = time.time() - self.placement_grace
                placed = [r for r in records if r.reserved_at <= settled]
                recent = {r.job_id for r in records if r.reserved_at > settled}
                targets = [
                    Target(jobs.get(r.job_id), r.forward.internal_ip if r.forward else "", r.port) for r in placed
                ]
                verdicts = await self._guard.judge(gateway, targets)
                # a forward that breaks the rules is not written back; one not yet decidable is left alone
                desired = {forward_rule(r) for r, v in zip(placed, verdicts, strict=True) if v is Verdict.OK}
                recent |= {r.job_id for r, v in zip(placed, verdicts, strict=True) if v is Verdict.UNDECIDED}
                await self._reconcile_one(gateway, current, desired, recent, stats)
            except RunnerError as exc:
                log.warning("keyhole: reconciling gateway %s failed: %s", gateway.internal_ip, exc)

    async def _reconcile_one(
        self, gateway: Gateway, current: CurrentRules, desired: set[ForwardRule], recent: set[str], stats: SweepStats
    ) -> None:
        seen_dnat, stray_dnat = _sort_rules(current.dnat, desired, recent)
        seen_masq, stray_masq = _sort_rules(current.masquerade, {_masq(r) for r in desired}, recent)
        add = []
        for rule in desired:
            has_dnat, has_masq = rule in seen_dnat, _masq(rule) in seen_masq
            if has_dnat and has_masq:
                continue
            add.append(rule)  # both halves are added; a lone half present is removed in the same batch
            if has_dnat:
                stray_dnat.append(rule)
            if has_masq:
                stray_masq.append(_masq(rule))
        if stray_dnat or stray_masq or add:
            log.info(
                "keyhole: gateway %s: removing %d stray rules, restoring %d forwards",
                gateway.internal_ip,
                len(stray_dnat) + len(stray_masq),
                len(add),
            )
            await self._pool.edit(gateway, add=add, delete_dnat=stray_dnat, delete_masquerade=stray_masq)
        stats.strays_removed += len(stray_dnat) + len(stray_masq)
        stats.missing_restored += len(add)


def _sort_rules(
    present: list[ForwardRule], wanted: set[ForwardRule], recent: set[str]
) -> tuple[set[ForwardRule], list[ForwardRule]]:
    """The wanted rules present (each once), and the strays: duplicates and unwanted rules of settled jobs."""
    seen: set[ForwardRule] = set()
    strays = []
    for rule in present:
        if rule in wanted and rule not in seen:
            seen.add(rule)
        elif rule.job_id not in recent:
            strays.append(rule)
    return seen, strays


def _masq(rule: ForwardRule) -> ForwardRule:
    return ForwardRule(rule.job_id, 1, rule.internal_ip, rule.internal_port)


def _observe(open_now: dict[str, set[tuple[str, int]]]) -> Callable[[JobRecord], JobRecord | None]:
    def change(record: JobRecord) -> JobRecord | None:
        if record.state not in (*_WAITING, JobState.AVAILABLE):
            return None
        forwards = [
            f.model_copy(update={"reachable": (f.internal_ip, f.internal_port) in open_now[f.gateway_ssh_ip]})
            if f.gateway_ssh_ip in open_now
            else f
            for f in record.forwards
        ]
        record.forwards = forwards
        if any(f.reachable for f in forwards):
            record.state = JobState.AVAILABLE
            record.details.pop(HEALTH_NOTE, None)
        elif record.state is JobState.AVAILABLE:
            record.details[HEALTH_NOTE] = HEALTH_TEXT
        return record

    return change
