"""Port reservations in etcd: one create-only key per port, owned by a job, so no port is ever given twice.

Layout under the runner's prefix ``P``::

    P/keyhole/ports/<port>   PortRecord JSON: owner job, and once placed, gateway and target

A reservation is a transaction that creates the key only if it does not exist, so concurrent requests in
one or several runner processes cannot both win a port. The record is written *before* the port is probed
and gains its gateway and target *before* the iptables rule is written; the rule is therefore always
explained by a record, and a crash at any step leaves something the reconciler can read. The internal port
(on every node of the job) and the external port (on the gateway) are the same number, which keeps a
forward to one key.
"""

from __future__ import annotations

import logging
import random
import time

import aetcd
from pydantic import BaseModel

from runner.errors import PortsExhausted, StateUnavailable
from runner.etcd import ETCD_ERRORS, unavailable

log = logging.getLogger(__name__)

RANDOM_TRIES = 8


class PortRecord(BaseModel):
    """Who holds a port, and (once placed) where its forward lives."""

    job_id: str
    port: int
    gateway: str | None = None
    external_ip: str | None = None
    internal_ip: str | None = None
    reserved_at: float = 0.0


class PortBook:
    """Reservations of ports in ``[low, high]``; with ``static`` set, only that port (debug mode)."""

    def __init__(self, client: aetcd.Client, prefix: str, low: int, high: int, *, static: int | None = None) -> None:
        self._client = client
        self._prefix = f"{prefix.rstrip('/')}/keyhole/ports/"
        self.low, self.high = (static, static) if static is not None else (low, high)
        self._random = random.Random()  # noqa: S311 - spreading picks, not secrecy

    def _key(self, port: int) -> bytes:
        return f"{self._prefix}{port:05d}".encode()

    async def _try(self, record: PortRecord) -> bool:
        tx = self._client.transactions
        key = self._key(record.port)
        try:
            ok, _ = await self._client.transaction(
                compare=[tx.create(key) == 0], success=[tx.put(key, record.model_dump_json().encode())], failure=[]
            )
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return bool(ok)

    async def reserve(self, job_id: str, count: int, avoid: set[int] | None = None) -> list[int]:
        """Reserve ``count`` ports for ``job_id``; random picks first, then a scan of what is free."""
        avoid = set(avoid or ())
        got: list[int] = []
        for _ in range(RANDOM_TRIES * count):
            if len(got) == count:
                return got
            port = self._random.randint(self.low, self.high)
            if port in avoid or port in got:
                continue
            if await self._try(PortRecord(job_id=job_id, port=port, reserved_at=time.time())):
                got.append(port)
        taken = {r.port for r in await self.all()} | avoid
        free = [p for p in range(self.low, self.high + 1) if p not in taken and p not in got]
        self._random.shuffle(free)
        for port in free:
            if len(got) == count:
                break
            if await self._try(PortRecord(job_id=job_id, port=port, reserved_at=time.time())):
                got.append(port)
        if len(got) < count:
            await self.release(job_id, got)
            raise PortsExhausted(internal=f"job {job_id}: {len(got)} of {count} ports in {self.low}-{self.high}")
        return got

    async def place(self, record: PortRecord) -> None:
        """Record a reserved port's gateway and target (before the rule is written)."""
        tx = self._client.transactions
        key = self._key(record.port)
        try:
            current = await self._client.get(key)
            if current is None or PortRecord.model_validate_json(current.value).job_id != record.job_id:
                raise StateUnavailable(internal=f"port {record.port} is no longer reserved for {record.job_id}")
            ok, _ = await self._client.transaction(
                compare=[tx.mod(key) == current.mod_revision],
                success=[tx.put(key, record.model_dump_json().encode())],
                failure=[],
            )
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        if not ok:
            raise StateUnavailable(internal=f"port {record.port} changed while being placed")

    async def release(self, job_id: str, ports: list[int]) -> int:
        """Delete the reservations of ``ports`` still held by ``job_id``; returns how many went."""
        released = 0
        tx = self._client.transactions
        for port in ports:
            key = self._key(port)
            try:
                current = await self._client.get(key)
                if current is None or PortRecord.model_validate_json(current.value).job_id != job_id:
                    continue
                ok, _ = await self._client.transaction(
                    compare=[tx.mod(key) == current.mod_revision], success=[tx.delete(key)], failure=[]
                )
            except ETCD_ERRORS as exc:
                raise unavailable(exc) from exc
            released += bool(ok)
        return released

    async def all(self) -> list[PortRecord]:
        """Every reservation, in one range read."""
        try:
            rows = await self._client.get_prefix(self._prefix.encode())
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return [PortRecord.model_validate_json(kv.value) for kv in rows]

    async def of_job(self, job_id: str) -> list[PortRecord]:
        return [r for r in await self.all() if r.job_id == job_id]


# TODO(merge): move this import to the top with the others; it sits here only so that this change and the
# concurrent rework of this module's etcd-error imports do not collide.
from runner.gateway.iptables import ForwardRule  # noqa: E402


def forward_rule(record: PortRecord) -> ForwardRule:
    """The iptables forward of a placed reservation: the same port on the gateway and on the job's node.

    Raises :class:`ValueError` for a record not yet placed (no internal address).
    """
    return ForwardRule(record.job_id, record.port, record.internal_ip or "", record.port)
