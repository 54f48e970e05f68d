"""Port reservations in etcd: one create-only key per port, owned by a job, so no port is ever given twice.

Layout under the runner's prefix ``P``::

    P/keyhole/ports/<port>   PortRecord JSON: owner job, and once placed, its forward (gateway and target)

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
from typing import Any

import aetcd
from pydantic import BaseModel, model_serializer, model_validator

from runner.active import WatchedPrefix
from runner.errors import PortsExhausted, StateUnavailable
from runner.etcd import ETCD_ERRORS, unavailable
from runner.gateway.iptables import ForwardRule
from runner.records import Forward

log = logging.getLogger(__name__)

RANDOM_TRIES = 8


class PortRecord(BaseModel):
    """Who holds a port, and once placed, its forward (the same port on the gateway and on the job's nodes).

    A reservation is not a forward: it exists before its gateway and target are known, and it is what keeps the
    port from being given twice. The stored JSON is flat, as records already in etcd have it:
    ``{"job_id", "port", "gateway" (the gateway's SSH address), "external_ip", "internal_ip", "reserved_at"}``,
    the three addresses null until placed; :meth:`_from_stored` and :meth:`_to_stored` are its one conversion.
    """

    job_id: str
    port: int
    forward: Forward | None = None
    reserved_at: float = 0.0

    @property
    def gateway_ssh_ip(self) -> str | None:
        """The SSH address of the gateway the forward is placed on; None while only reserved."""
        return self.forward.gateway_ssh_ip if self.forward is not None else None

    @model_validator(mode="before")
    @classmethod
    def _from_stored(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "forward" in data:
            return data
        stored = dict(data)
        gateway, external_ip, internal_ip = (stored.pop(k, None) for k in ("gateway", "external_ip", "internal_ip"))
        if gateway is not None:
            port = stored.get("port")
            stored["forward"] = {
                "internal_port": port,
                "external_port": port,
                "external_ip": external_ip or "",
                "gateway_ssh_ip": gateway,
                "internal_ip": internal_ip or "",
            }
        return stored

    @model_serializer(mode="plain")
    def _to_stored(self) -> dict[str, Any]:
        f = self.forward
        return {
            "job_id": self.job_id,
            "port": self.port,
            "gateway": f.gateway_ssh_ip if f else None,
            "external_ip": f.external_ip if f else None,
            "internal_ip": f.internal_ip if f else None,
            "reserved_at": self.reserved_at,
        }

    @model_validator(mode="after")
    def _same_port(self) -> PortRecord:
        if self.forward is not None and not self.port == self.forward.internal_port == self.forward.external_port:
            raise ValueError(f"port {self.port}: its forward must use the same port on the gateway and the node")
        return self


class PortBook:
    """Reservations of ports in ``[low, high]``; with ``static`` set, only that port (debug mode)."""

    def __init__(self, client: aetcd.Client, prefix: str, low: int, high: int, *, static: int | None = None) -> None:
        self._client = client
        self._prefix = f"{prefix.rstrip('/')}/keyhole/ports/"
        self.low, self.high = (static, static) if static is not None else (low, high)
        self._random = random.Random()  # noqa: S311 - spreading picks, not secrecy
        # the keyhole watcher's copy, kept by a watch: a steady tick reads no reservation from etcd
        self._watched = WatchedPrefix(client, self._prefix.encode(), "keyhole: port reservations")
        self._parsed: dict[bytes, tuple[int, PortRecord]] = {}  # key -> (revision, record) parsed from it

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
            if ok:
                self._watched.forget(key, current.mod_revision)  # gone for the watcher's next tick too
            released += bool(ok)
        return released

    async def all(self) -> list[PortRecord]:
        """Every reservation, in one range read."""
        try:
            rows = await self._client.get_prefix(self._prefix.encode())
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return [PortRecord.model_validate_json(kv.value) for kv in rows]

    async def held(self) -> list[PortRecord]:
        """Every reservation from the watched copy (read in full only when its watch is lost); each record is
        parsed once per revision."""
        items = await self._watched.items()
        parsed = {}
        for key, (value, revision) in items.items():
            cached = self._parsed.get(key)
            if cached is None or cached[0] != revision:
                cached = (revision, PortRecord.model_validate_json(value))
            parsed[key] = cached
        self._parsed = parsed
        return [record for _, record in parsed.values()]

    async def close(self) -> None:
        await self._watched.close()

    async def of_job(self, job_id: str) -> list[PortRecord]:
        return [r for r in await self.all() if r.job_id == job_id]


def forward_rule(record: PortRecord) -> ForwardRule:
    """The iptables rule of a placed reservation: the same port on the gateway and on the job's node.

    Raises :class:`ValueError` for a record not yet placed (no forward).
    """
    if record.forward is None:
        raise ValueError(f"port {record.port} of job {record.job_id} is reserved, not placed")
    return ForwardRule(record.job_id, record.port, record.forward.internal_ip, record.port)
