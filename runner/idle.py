"""Idle sessions: the leader's sweep that notices an available job nobody uses and cancels it.

Each forward has a counting rule on its gateway (:data:`runner.gateway.iptables.ACCOUNTING_CHAIN`). One
:meth:`IdleSweeper.tick` (a :class:`~runner.loops.Loop` under the watchers' leadership):

1. reads the active jobs (one etcd range read) and, per gateway that holds forwards or counting rules, the counters
   (one command per gateway, whatever the number of jobs); a gateway that cannot be read is skipped this sweep, so
   its jobs are neither touched nor cancelled;
2. keeps each gateway's counting rules equal to the active jobs' forwards there: rules missing (forwards written
   before the setting was on, or restored by the keyhole watcher's reconciler) are added, rules of jobs no longer
   active and duplicates removed, all in one ``iptables-restore``;
3. a job has had traffic when a packet counter of one of its rules grew since the last sweep. Its details then
   carry :data:`LAST_TRAFFIC` (ISO 8601, UTC; rewritten at most every :attr:`IdleSweeper.resolution` seconds, so a
   busy session does not write etcd on every sweep) and lose any :data:`IDLE_WARNING`;
4. an ``available`` job without traffic for ``timeout - warning`` seconds gets :data:`IDLE_WARNING` in its details
   (and so in its event stream); after ``timeout`` seconds it is cancelled with ``scancel`` like a frontend's
   cancel, its details saying why (:data:`runner.records.CANCEL_REASON`, which the watcher adds to the job's
   ``end-reason`` once Slurm reports it ended).

A job's silence counts from its last traffic or, before any, from the first sweep that saw it available. Counter
baselines live in the leader's memory: a new leader's first sweep only sets them, so a leader change can delay
a cancellation by one sweep, never bring one forward. Counters that went down (a rule written again) set a new
baseline and are not traffic.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from runner.active import ActiveJobs
from runner.errors import NoSuchRunningJob, RunnerError
from runner.gateway.iptables import Counted, ForwardRule
from runner.gateway.pool import Gateway, GatewayPool
from runner.records import CANCEL_REASON, JobRecord, JobState
from runner.state import StateStore

log = logging.getLogger(__name__)

LAST_TRAFFIC = "last-traffic"
IDLE_WARNING = "idle-warning"
MIN_INTERVAL, MAX_INTERVAL = 0.2, 30.0
"""Seconds between sweeps: a twentieth of the timeout, within these bounds."""


class Action(enum.Enum):
    NONE = "none"
    WARN = "warn"
    CLEAR = "clear"
    CANCEL = "cancel"


@dataclass(frozen=True)
class IdlePolicy:
    """Seconds without traffic before an available job is cancelled, and how long before that it is warned."""

    timeout: float
    warning: float

    @classmethod
    def from_minutes(cls, timeout: float, warning: float) -> IdlePolicy:
        return cls(timeout * 60.0, min(warning, timeout) * 60.0)

    @property
    def interval(self) -> float:
        return min(max(self.timeout / 20, MIN_INTERVAL), MAX_INTERVAL)


def decide(policy: IdlePolicy, idle_since: float, now: float, warned: bool) -> Action:
    """What to do with an available job silent since ``idle_since``; ``warned``: its details carry the warning."""
    idle = now - idle_since
    if idle >= policy.timeout:
        return Action.CANCEL
    if idle >= policy.timeout - policy.warning:
        return Action.NONE if warned else Action.WARN
    return Action.CLEAR if warned else Action.NONE


def iso(seconds: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the second (``2026-12-03T22:58:25Z``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def counting_rule(job_id: str, internal_ip: str, internal_port: int) -> ForwardRule:
    """The counting rule of one forward (it has no gateway port: external port 1, as for MASQUERADE)."""
    return ForwardRule(job_id, 1, internal_ip, internal_port)


def reconcile_rules(
    present: list[Counted], wanted: set[ForwardRule], active: set[str]
) -> tuple[list[ForwardRule], list[ForwardRule]]:
    """``(add, delete)``: wanted rules not present; present rules of inactive jobs, and second copies."""
    seen: set[ForwardRule] = set()
    delete: list[ForwardRule] = []
    for counted in present:
        if counted.rule in seen or counted.rule.job_id not in active:
            delete.append(counted.rule)
        seen.add(counted.rule)
    return sorted(wanted - seen), delete


class IdleSweeper:
    """The idle sweep of one runner; only the leader runs :meth:`tick`."""

    def __init__(
        self,
        store: StateStore,
        pool: GatewayPool,
        policy: IdlePolicy,
        cancel: Callable[[str], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.time,
        view: ActiveJobs | None = None,
    ) -> None:
        self._store = store
        self._view = view  # the runner's shared view: a steady sweep then reads no job record
        self._pool = pool
        self.policy = policy
        self._cancel = cancel
        self._clock = clock
        self.resolution = min(60.0, policy.timeout / 10)
        self._packets: dict[tuple[str, ForwardRule], int] = {}  # (gateway, rule) -> packets at the last sweep
        self._traffic: dict[str, float] = {}  # job -> last traffic this leader saw
        self._since: dict[str, float] = {}  # job -> first sweep that saw it available
        self._unread: set[str] = set()  # gateways whose counters the last sweep could not read
        self.cancelled: list[str] = []

    async def tick(self) -> None:
        now = self._clock()
        active = await (self._view.snapshot() if self._view else self._store.active_jobs())
        jobs = {record.job_id: record for record, _ in active}
        wanted: dict[str, set[ForwardRule]] = {}
        for record in jobs.values():
            for f in record.forwards:
                wanted.setdefault(f.gateway_ssh_ip, set()).add(
                    counting_rule(record.job_id, f.internal_ip, f.internal_port)
                )
        gateways = self._pool.healthy()  # also those without forwards: their leftover rules go too
        read = await asyncio.gather(*(self._sweep(g, wanted.get(g.internal_ip, set()), set(jobs)) for g in gateways))
        blind = {g.internal_ip for g, ok in zip(gateways, read, strict=True) if ok is None}
        blind |= {ip for ip in wanted if ip not in {g.internal_ip for g in gateways}}
        moved = set().union(*(r for r in read if r is not None))
        for job_id in moved:
            self._traffic[job_id] = now
        self._forget(set(jobs))
        for record in jobs.values():
            if record.state is not JobState.AVAILABLE or not record.forwards:
                self._since.pop(record.job_id, None)
                continue
            if any(f.gateway_ssh_ip in blind for f in record.forwards) and record.job_id not in moved:
                continue  # a gateway not read this sweep: its silence is not known
            await self._judge(record, now)

    async def _sweep(self, gateway: Gateway, wanted: set[ForwardRule], active: set[str]) -> set[str] | None:
        """The jobs whose counters grew on ``gateway``; None when it could not be read."""
        ip = gateway.internal_ip
        try:
            present = await self._pool.counters(gateway)
        except RunnerError as exc:
            # once per outage, not once per sweep
            level = logging.DEBUG if ip in self._unread else logging.WARNING
            log.log(level, "idle: counters of gateway %s not read; its jobs are left alone: %s", ip, exc)
            self._unread.add(ip)
            return None
        if ip in self._unread:
            self._unread.discard(ip)
            log.info("idle: counters of gateway %s read again", ip)
        moved: set[str] = set()
        for counted in present:
            key = (ip, counted.rule)
            before = self._packets.get(key)
            if before is not None and counted.packets > before:
                moved.add(counted.rule.job_id)
            self._packets[key] = counted.packets
        add, delete = reconcile_rules(present, wanted, active)
        if add or delete:
            try:
                await self._pool.edit(gateway, add_accounting=add, delete_accounting=delete)
            except RunnerError as exc:
                log.warning("idle: counting rules on gateway %s not reconciled: %s", ip, exc)
            else:
                log.info("idle: gateway %s: %d counting rules added, %d removed", ip, len(add), len(delete))
                for rule in delete:
                    self._packets.pop((ip, rule), None)
        return moved

    def _forget(self, active: set[str]) -> None:
        for key in [k for k in self._packets if k[1].job_id not in active]:
            del self._packets[key]
        for table in (self._traffic, self._since):
            for job_id in [j for j in table if j not in active]:
                del table[job_id]

    async def _judge(self, record: JobRecord, now: float) -> None:
        job_id = record.job_id
        stored = parse_iso(record.details.get(LAST_TRAFFIC))
        seen = self._traffic.get(job_id)
        since = self._since.setdefault(job_id, now)
        last = max(t for t in (stored, seen, since) if t is not None)
        if seen is not None and (stored is None or seen - stored >= self.resolution):
            await self._store.update_job(job_id, _traffic_at(seen))
        if CANCEL_REASON in record.details:
            action = Action.CANCEL  # decided before; the scancel did not go through
        else:
            action = decide(self.policy, last, now, IDLE_WARNING in record.details)
        if action is Action.WARN:
            at = iso(last + self.policy.timeout)
            text = f"no traffic through the job's forwards since {iso(last)}; cancelled at {at} unless there is some"
            await self._store.update_job(job_id, _noted(IDLE_WARNING, text))
            log.info("job %s (uid %s): idle since %s, warned: %s", job_id, record.uid, iso(last), text)
        elif action is Action.CLEAR:
            await self._store.update_job(job_id, _cleared)
            log.info("job %s (uid %s): traffic again; idle warning cleared", job_id, record.uid)
        elif action is Action.CANCEL:
            await self._cancel_idle(record, last)

    async def _cancel_idle(self, record: JobRecord, last: float) -> None:
        minutes = f"{self.policy.timeout / 60:g}"
        reason = f"idle: no traffic through its forwards for {minutes} minutes (since {iso(last)})"
        reason = record.details.get(CANCEL_REASON, reason)
        await self._store.update_job(record.job_id, _noted(CANCEL_REASON, reason))
        try:
            await self._cancel(record.job_id)
        except NoSuchRunningJob:
            return  # it ended meanwhile
        except RunnerError as exc:
            log.warning("job %s (uid %s): idle cancel failed, retried next sweep: %s", record.job_id, record.uid, exc)
            return
        self.cancelled.append(record.job_id)
        log.info("job %s (uid %s): cancelled: %s", record.job_id, record.uid, reason)


def _traffic_at(seconds: float) -> Callable[[JobRecord], JobRecord | None]:
    def change(record: JobRecord) -> JobRecord | None:
        if not record.active:
            return None
        record.details[LAST_TRAFFIC] = iso(seconds)
        record.details.pop(IDLE_WARNING, None)
        return record

    return change


def _noted(key: str, text: str) -> Callable[[JobRecord], JobRecord | None]:
    def change(record: JobRecord) -> JobRecord | None:
        if record.state is not JobState.AVAILABLE or record.details.get(key) == text:
            return None
        record.details[key] = text
        return record

    return change


def _cleared(record: JobRecord) -> JobRecord | None:
    if IDLE_WARNING not in record.details:
        return None
    del record.details[IDLE_WARNING]
    return record
