"""Builds the keyhole side of a runner from its settings: gateways, port book, claims, service, watcher, listener.

:class:`Keyhole` is what :class:`runner.app.Runner` holds: ``start()`` serves the keyhole app on the first
``keyholed-servers`` entry (or the ``listen`` endpoint given), ``loop`` is the keyhole watcher's loop to run
under the watchers' leadership, and ``close()`` stops the listener and the gateway connections.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aetcd

from runner.api.server import ApiServer
from runner.config import ApiSettings, Endpoint, Settings
from runner.gateway.access import gateway_access
from runner.gateway.pool import Gateway, GatewayPool
from runner.keyhole.allocation import SlurmQuery
from runner.keyhole.claims import Claims
from runner.keyhole.http import create_keyhole_app
from runner.keyhole.ports import PortBook
from runner.keyhole.protocol import DEFAULT_WINDOW_SECONDS
from runner.keyhole.service import Fault, KeyholeService
from runner.loops import Loop
from runner.readiness import KeyholeWatcher
from runner.ssh import CommandRunner, SshNode
from runner.state import StateStore

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.2  # seconds between readiness sweeps: "available" follows the application within about this


def gateway_pool(settings: Settings, runners: list[CommandRunner] | None = None) -> GatewayPool:
    nodes = settings.gateway_nodes
    made = runners or [SshNode(g.internal_ip, g.port, g.user, settings.ssh) for g in nodes]
    gateways = [Gateway(r, g.internal_ip, g.external_ip) for r, g in zip(made, nodes, strict=True)]
    access = gateway_access(settings.gateway_helper)
    return GatewayPool(gateways, down_retry_after=settings.ssh.down_retry_after, access=access)


class Keyhole:
    """The keyhole service and watcher of one runner."""

    def __init__(
        self,
        settings: Settings,
        etcd: aetcd.Client,
        store: StateStore,
        scheduler: SlurmQuery,
        *,
        listen: Endpoint | None = None,
        fault: Fault | None = None,
        gateway_runners: list[CommandRunner] | None = None,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        prefix = settings.etcd_prefix
        span = settings.keyholed_port_range
        self.pool = gateway_pool(settings, gateway_runners)
        self.ports = PortBook(etcd, prefix, span.min, span.max, static=settings.debug.keyholed_static_forwarding)
        self.claims = Claims(
            etcd, prefix, nonce_ttl=2 * DEFAULT_WINDOW_SECONDS, takeover_after=2 * settings.ssh.command_timeout
        )
        self.watcher = KeyholeWatcher(
            store, self.ports, self.claims, self.pool, placement_grace=2 * settings.ssh.command_timeout
        )
        interval = min(PROBE_INTERVAL, settings.watcher.interval)
        self.loop = Loop("keyhole-watcher", self.watcher.tick, interval, gate)
        self.service = KeyholeService(
            settings,
            store,
            self.claims,
            self.ports,
            self.pool,
            scheduler=scheduler,
            on_forwarded=self.loop.wake,
            fault=fault,
        )
        self.app = create_keyhole_app(self.service)
        self._listen = listen or (settings.keyholed_servers[0] if settings.keyholed_servers else None)
        self.server: ApiServer | None = None

    async def start(self) -> None:
        """Serve the keyhole app (no listener when no endpoint is configured)."""
        if self._listen is None:
            log.warning("keyhole: no keyholed-servers configured; jobs cannot ask for ports")
            return
        self.server = ApiServer(self.app, ApiSettings(host=self._listen.ip, port=self._listen.port))
        await self.server.start()
        log.info("keyhole service listening on %s", self.server.url)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        await self.pool.close()
