"""Per-job backoff after refused keyhole requests, kept in etcd so it holds across runner replicas.

Layout under the runner's prefix ``P``::

    P/keyhole/refusals/<job id>   {"count": n, "until": epoch seconds}, leased so it vanishes on its own

Only authenticated requests (a valid HMAC with the job's token) count: anyone can send garbage naming a job,
and that must not slow the job's own client. After the second refusal each further attempt waits twice as
long as the one before (1 s, 2 s, 4 s ... at most :data:`MAX_DELAY`); while a job waits, its requests are
answered 429 before the runner asks Slurm or a gateway anything, so no job can make it call either in a loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import aetcd
from pydantic import BaseModel

from runner.errors import StateUnavailable, TooManyRefusals
from runner.etcd import ETCD_ERRORS, unavailable

log = logging.getLogger(__name__)

BASE_DELAY = 1.0
MAX_DELAY = 300.0
FREE_REFUSALS = 1  # a first refusal costs no wait: a client may have had one honest mistake
MAX_CAS_ATTEMPTS = 5


class RefusalRecord(BaseModel):
    count: int
    until: float


def delay_after(count: int) -> float:
    """Seconds a job waits after its ``count``-th refusal."""
    if count <= FREE_REFUSALS:
        return 0.0
    return float(min(BASE_DELAY * 2.0 ** (count - FREE_REFUSALS - 1), MAX_DELAY))


class RefusalBackoff:
    """Counts a job's refused requests and says how long it must wait."""

    def __init__(self, client: aetcd.Client, prefix: str, *, clock: Callable[[], float]) -> None:
        self._client = client
        self._prefix = f"{prefix.rstrip('/')}/keyhole/refusals/"
        self.clock = clock  # epoch seconds; tests may skip ahead

    def _key(self, job_id: str) -> bytes:
        return f"{self._prefix}{job_id}".encode()

    async def check(self, job_id: str) -> None:
        """Raise :class:`TooManyRefusals` (with ``retry_after``) while ``job_id`` must wait."""
        try:
            got = await self._client.get(self._key(job_id))
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        if got is None:
            return
        record = RefusalRecord.model_validate_json(got.value)
        wait = record.until - self.clock()
        if wait > 0:
            raise TooManyRefusals(
                f"this job's keyhole requests were refused {record.count} times; retry in {math.ceil(wait)} s",
                internal=f"job {job_id}: backing off",
                retry_after=math.ceil(wait),
            )

    async def record(self, job_id: str) -> int:
        """Count one more refusal for ``job_id``; returns the count."""
        tx = self._client.transactions
        key = self._key(job_id)
        try:
            for _ in range(MAX_CAS_ATTEMPTS):
                got = await self._client.get(key)
                count = 1 if got is None else RefusalRecord.model_validate_json(got.value).count + 1
                wait = delay_after(count)
                body = RefusalRecord(count=count, until=self.clock() + wait).model_dump_json().encode()
                # The record outlives the longest wait, then goes by itself (also for jobs that never got ports).
                lease = await self._client.lease(int(2 * MAX_DELAY))
                compare = [tx.create(key) == 0] if got is None else [tx.mod(key) == got.mod_revision]
                ok, _ = await self._client.transaction(
                    compare=compare, success=[tx.put(key, body, lease=lease)], failure=[]
                )
                if ok:
                    if wait > 0:
                        log.warning("keyhole: job %s: %d refused requests; next one waits %.0f s", job_id, count, wait)
                    return count
                await lease.revoke()
        except ETCD_ERRORS as exc:
            raise unavailable(exc) from exc
        raise StateUnavailable(internal=f"job {job_id}: refusal count changed too often")
