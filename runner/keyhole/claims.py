"""A job asks once: the request record and the nonce record in etcd, created together in one transaction.

Layout under the runner's prefix ``P``::

    P/keyhole/requests/<job id>   ClaimRecord JSON: the nonce and digest of the job's one request, its
                                  handling state, and once done the answer
    P/keyhole/nonces/<nonce>      the digest of the signed request that used it (leased for the window)

The first request of a job creates both keys or neither. Anything later is judged by reading them back:
identical signed bytes (same digest) are a retry and get the recorded answer (or "in progress", or take over
a request whose handler vanished); a different request of the same job is a second request; a known nonce
with other bytes is a replay. The nonce lease outlives the signature window, so a replay can never come
back once its nonce is forgotten: the timestamp check refuses it first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import aetcd
from pydantic import BaseModel

from runner.etcd import ETCD_ERRORS, unavailable
from runner.records import Forward


class ClaimStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"


Answer = list[dict[str, int | str]]
"""What the job was told, as the request record stores it: ``{"internal_port", "external_port", "gateway"}``
per forward, ``gateway`` being the public address (the shape records already in etcd have)."""


def answered(forwards: list[Forward]) -> Answer:
    """The stored answer of ``forwards``: the one conversion to the request record's shape."""
    return [
        {"internal_port": f.internal_port, "external_port": f.external_port, "gateway": f.external_ip} for f in forwards
    ]


class ClaimRecord(BaseModel):
    nonce: str
    digest: str
    owner: str
    started: float
    status: ClaimStatus = ClaimStatus.PENDING
    answer: Answer | None = None


class Outcome(StrEnum):
    NEW = "new"  # this handler owns the request now
    TAKEOVER = "takeover"  # a retry of a request whose handler vanished; this handler owns it now
    ANSWERED = "answered"  # a retry of a finished request: ``record.answer`` is what the job was told
    IN_PROGRESS = "in-progress"  # a retry while another handler still works on it
    SECOND_REQUEST = "second-request"  # the job already asked with other bytes
    REPLAYED_NONCE = "replayed-nonce"  # the nonce was used by other bytes


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    record: ClaimRecord | None = None


class Claims:
    """The request and nonce records."""

    def __init__(self, client: aetcd.Client, prefix: str, *, nonce_ttl: int, takeover_after: float) -> None:
        self._client = client
        base = prefix.rstrip("/")
        self._requests = f"{base}/keyhole/requests/"
        self._nonces = f"{base}/keyhole/nonces/"
        self._nonce_ttl = nonce_ttl
        self._takeover_after = takeover_after

    def _request_key(self, job_id: str) -> bytes:
        return f"{self._requests}{job_id}".encode()

    def _nonce_key(self, nonce: str) -> bytes:
        return f"{self._nonces}{nonce}".encode()

    async def claim(self, job_id: str, nonce: str, digest: str, owner: str) -> Claim:
        """Create the job's request record, or say what the existing records make of this request."""
        try:
            return await self._claim(job_id, nonce, digest, owner)
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc

    async def _claim(self, job_id: str, nonce: str, digest: str, owner: str) -> Claim:
        tx = self._client.transactions
        rkey, nkey = self._request_key(job_id), self._nonce_key(nonce)
        record = ClaimRecord(nonce=nonce, digest=digest, owner=owner, started=time.time())
        lease = await self._client.lease(self._nonce_ttl)
        ok, _ = await self._client.transaction(
            compare=[tx.create(rkey) == 0, tx.create(nkey) == 0],
            success=[tx.put(rkey, record.model_dump_json().encode()), tx.put(nkey, digest.encode(), lease=lease)],
            failure=[],
        )
        if ok:
            return Claim(Outcome.NEW, record)
        await lease.revoke()
        seen_nonce = await self._client.get(nkey)
        if seen_nonce is not None and seen_nonce.value.decode() != digest:
            return Claim(Outcome.REPLAYED_NONCE)
        current = await self._client.get(rkey)
        if current is None:  # an earlier attempt gave up and cleared its request; start afresh
            ok, _ = await self._client.transaction(
                compare=[tx.create(rkey) == 0], success=[tx.put(rkey, record.model_dump_json().encode())], failure=[]
            )
            return Claim(Outcome.NEW, record) if ok else Claim(Outcome.IN_PROGRESS)
        return await self._judge(rkey, current.value, current.mod_revision, digest, owner)

    async def _judge(self, rkey: bytes, value: bytes, revision: int, digest: str, owner: str) -> Claim:
        tx = self._client.transactions
        existing = ClaimRecord.model_validate_json(value)
        if existing.digest != digest:
            return Claim(Outcome.SECOND_REQUEST, existing)
        if existing.status is ClaimStatus.DONE:
            return Claim(Outcome.ANSWERED, existing)
        if time.time() - existing.started < self._takeover_after:
            return Claim(Outcome.IN_PROGRESS, existing)
        taken = existing.model_copy(update={"owner": owner, "started": time.time()})
        ok, _ = await self._client.transaction(
            compare=[tx.mod(rkey) == revision],
            success=[tx.put(rkey, taken.model_dump_json().encode())],
            failure=[],
        )
        return Claim(Outcome.TAKEOVER, taken) if ok else Claim(Outcome.IN_PROGRESS, existing)

    async def finish(self, job_id: str, record: ClaimRecord, answer: list[Forward]) -> None:
        """Record the answer, so a retry of the same bytes gets it back."""
        done = record.model_copy(update={"status": ClaimStatus.DONE, "answer": answered(answer)})
        try:
            await self._client.put(self._request_key(job_id), done.model_dump_json().encode())
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc

    async def abandon(self, job_id: str, nonce: str) -> None:
        """Forget a request that failed for a passing reason, so the client's retry starts afresh."""
        try:
            await self._client.delete(self._request_key(job_id))
            await self._client.delete(self._nonce_key(nonce))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc

    async def forget(self, job_id: str) -> None:
        """Drop a finished job's request record (its nonce expires with its lease)."""
        try:
            await self._client.delete(self._request_key(job_id))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc

    async def job_ids(self) -> list[str]:
        try:
            rows = await self._client.get_prefix(self._requests.encode(), keys_only=True)
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        return [kv.key.decode()[len(self._requests) :] for kv in rows]
