"""The keyhole watcher's check of stored forwards before it acts on them (probes, restores a rule).

etcd holds what the keyhole service decided, but a record there may have been written by someone else (an
etcd reachable without authentication, a bug, an old version). So before the watcher probes a target from a
gateway or writes a rule back, it checks the stored forward against the same rules the service applied:

* the port lies in ``keyholed-port-range`` (or is the debug static port);
* the target is an address of one of the nodes Slurm allocated to the job (the job watcher's ``node-list``,
  with ``forwarding-hostname-suffix``, resolved on the gateway);
* the target lies in ``compute-networks`` when those are set.

A forward that breaks a rule is logged once and left alone: its rule is not written back (and one found on
a gateway is a stray the reconciler removes). A forward whose job's nodes are not known yet (the watcher has
not seen the job running) is undecided: nothing is done with it either way until they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from runner.config import Settings
from runner.errors import RunnerError
from runner.gateway.pool import Gateway, GatewayPool
from runner.keyhole.allocation import in_networks
from runner.records import JobRecord
from runner.slurm.hostlist import expand

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    OK = "ok"
    BAD = "bad"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Target:
    """What the guard judges of one stored forward before the watcher acts on it: its job and its target.

    Not a second forward type: built from a job's :class:`~runner.records.Forward` or a placed reservation,
    it keeps only what the checks need (no gateway, no public address).
    """

    job: JobRecord | None
    internal_ip: str
    port: int


class TargetGuard:
    """Judges stored forwards against the port range, the job's own nodes and the compute networks."""

    def __init__(self, settings: Settings, pool: GatewayPool) -> None:
        static = settings.debug.keyholed_static_forwarding
        span = settings.keyholed_port_range
        self._ports = (static, static) if static is not None else (span.min, span.max)
        self._networks = list(settings.compute_networks)
        self._suffix = settings.forwarding_hostname_suffix
        self._pool = pool
        self._reported: set[tuple[str, str, int, str]] = set()

    def _names(self, job: JobRecord | None) -> list[str] | None:
        node_list = job.details.get("node-list") if job is not None else None
        if not node_list:
            return None
        try:
            return [name + self._suffix for name in expand(node_list)]
        except RunnerError:
            return []

    async def judge(self, gateway: Gateway, targets: Sequence[Target]) -> list[Verdict]:
        """A verdict per target; one name resolution on ``gateway`` for all of them (answers are cached)."""
        names = sorted({n for t in targets for n in self._names(t.job) or []})
        addresses: dict[str, str] = {}
        if names:
            try:
                addresses = await self._pool.resolve(gateway, names)
            except RunnerError as exc:
                log.warning("keyhole: cannot check forwards on gateway %s now: %s", gateway.internal_ip, exc)
                return [Verdict.UNDECIDED for _ in targets]
        return [self._one(gateway, t, addresses) for t in targets]

    def _one(self, gateway: Gateway, target: Target, addresses: dict[str, str]) -> Verdict:
        names = self._names(target.job)
        problem = None
        low, high = self._ports
        if not low <= target.port <= high:
            problem = f"port outside the keyhole range {low}-{high}"
        elif names is None:
            return Verdict.UNDECIDED
        elif target.internal_ip not in {addresses.get(n) for n in names}:
            problem = "target is no node Slurm allocated to the job"
        elif self._networks and not in_networks(target.internal_ip, self._networks):
            problem = "target outside the compute networks"
        if problem is None:
            return Verdict.OK
        job_id = target.job.job_id if target.job is not None else "?"
        key = (gateway.internal_ip, job_id, target.port, problem)
        if key not in self._reported:
            self._reported.add(key)
            log.warning(
                "keyhole: stored forward of job %s (port %d -> %s on gateway %s) breaks the rules: %s; not acted on",
                job_id,
                target.port,
                target.internal_ip,
                gateway.internal_ip,
                problem,
            )
        return Verdict.BAD
