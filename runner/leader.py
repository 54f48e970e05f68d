"""Leader election over an etcd lease: only one runner process at a time runs the watchers.

A process becomes leader by creating the election key bound to its own lease (a create-only transaction) and
stays leader while it keeps the lease alive. If the lease cannot be refreshed in time, the process steps down
before the lease can expire elsewhere, so two leaders never act at once for longer than one refresh interval.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import aetcd

from runner.etcd import ETCD_ERRORS

log = logging.getLogger(__name__)


class Leadership:
    """Campaigns for ``key`` until cancelled; :attr:`is_leader` tells whether this process leads now."""

    def __init__(self, client: aetcd.Client, key: str, ttl: int, identity: str | None = None) -> None:
        self._client = client
        self._key = key.encode()
        self._ttl = ttl
        self.identity = identity or uuid.uuid4().hex
        self._leading = asyncio.Event()
        self._lease: aetcd.leases.Lease | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def holder(self) -> str | None:
        """The identity holding the lease now (this process or another), None when nobody leads; one etcd read."""
        got = await self._client.get(self._key)
        return None if got is None else bytes(got.value).decode()

    async def wait_leader(self) -> None:
        await self._leading.wait()

    async def _campaign_once(self) -> bool:
        lease = await self._client.lease(self._ttl)
        tx = self._client.transactions
        won, _ = await self._client.transaction(
            compare=[tx.create(self._key) == 0],
            success=[tx.put(self._key, self.identity.encode(), lease=lease)],
            failure=[],
        )
        if won:
            self._lease = lease
            return True
        await lease.revoke()
        return False

    async def run(self) -> None:
        """Campaign, lead, and campaign again after losing the lease; runs until cancelled."""
        interval = max(self._ttl / 3, 0.2)
        try:
            while True:
                try:
                    if self._lease is None:
                        if await self._campaign_once():
                            self._leading.set()
                            log.info("leader: %s now leads (%s)", self.identity, self._key.decode())
                    else:
                        async with asyncio.timeout(interval):
                            await self._lease.refresh()
                            remaining = await self._lease.remaining_ttl()
                        if remaining <= 0:
                            self._step_down("lease expired")
                except ETCD_ERRORS as exc:
                    if self._lease is not None:
                        self._step_down(f"cannot refresh lease: {exc}")
                    else:
                        log.debug("leader: campaign failed: %s", exc)
                await asyncio.sleep(interval)
        finally:
            await self.resign()

    def _step_down(self, reason: str) -> None:
        log.warning("leader: %s steps down: %s", self.identity, reason)
        self._leading.clear()
        self._lease = None

    async def resign(self) -> None:
        """Give up leadership now (revokes the lease, deleting the key), so another process takes over at once."""
        lease, self._lease = self._lease, None
        self._leading.clear()
        if lease is not None:
            try:
                await lease.revoke()
            except ETCD_ERRORS as exc:
                log.warning("leader: cannot revoke lease: %s", exc)
