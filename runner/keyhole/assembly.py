"""Builds the keyhole side of a runner from its settings: gateways, port book, claims, service, watcher, listener.

:class:`Keyhole` is what :class:`runner.app.Runner` holds: ``start()`` serves the keyhole app on the first
``keyholed-servers`` entry (or the ``listen`` endpoint given), ``loop`` is the keyhole watcher's loop to run
under the watchers' leadership, and ``close()`` stops the listener and the gateway connections.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import aetcd

from runner.active import ActiveJobs
from runner.config import ApiSettings, Endpoint, KeyholeSettings, Settings
from runner.errors import ConfigError
from runner.gateway.access import gateway_access
from runner.gateway.pool import Gateway, GatewayPool
from runner.keyhole.allocation import SlurmQuery
from runner.keyhole.claims import Claims
from runner.keyhole.guard import TargetGuard
from runner.keyhole.http import create_keyhole_app
from runner.keyhole.ports import PortBook
from runner.keyhole.protocol import DEFAULT_WINDOW_SECONDS
from runner.keyhole.readiness import KeyholeWatcher
from runner.keyhole.script import expand_keyhole_request
from runner.keyhole.service import Fault, KeyholeService
from runner.loops import Loop
from runner.ssh import CommandRunner, SshNode
from runner.state import StateStore
from runner.web.server import ApiServer

log = logging.getLogger(__name__)

_PEM = re.compile(r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\s*)+")
CONNECTIONS_PER_NODE = 32
"""Connections one address (a compute node: every job on it) may hold on the keyhole listener at once."""
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
        view: ActiveJobs | None = None,
    ) -> None:
        self.ca_pem = _ca_pem(settings.keyhole)  # first: a bad CA file stops the start before anything opens
        prefix = settings.etcd_prefix
        span = settings.keyholed_port_range
        self.pool = gateway_pool(settings, gateway_runners)
        self.ports = PortBook(etcd, prefix, span.min, span.max, static=settings.debug.keyholed_static_forwarding)
        self.claims = Claims(
            etcd, prefix, nonce_ttl=2 * DEFAULT_WINDOW_SECONDS, takeover_after=2 * settings.ssh.command_timeout
        )
        self.watcher = KeyholeWatcher(
            store,
            self.ports,
            self.claims,
            self.pool,
            TargetGuard(settings, self.pool),
            placement_grace=2 * settings.ssh.command_timeout,
            view=view,
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
        self._settings = settings

    def expand(self, script: str, job_id: str, token: str, session_secret: str) -> str:
        """The batch script with its ``#KEYHOLE-REQUEST-PORTS`` line replaced by the client (HTTPS with the
        CA embedded when the service has a certificate)."""
        scheme = "https" if self.ca_pem is not None else "http"
        return expand_keyhole_request(
            script,
            job_id=job_id,
            token=token,
            session_secret=session_secret,
            service_urls=[f"{scheme}://{e.ip}:{e.port}" for e in self._settings.keyholed_servers],
            max_ports=self._settings.keyholed_max_forwarders_per_job,
            ca_pem=self.ca_pem,
        )

    async def start(self) -> None:
        """Serve the keyhole app (no listener when no endpoint is configured)."""
        if self._listen is None:
            log.warning("keyhole: no keyholed-servers configured; jobs cannot ask for ports")
            return
        tls = self._settings.keyhole
        listen = ApiSettings(host=self._listen.ip, port=self._listen.port, tls_cert=tls.tls_cert, tls_key=tls.tls_key)
        self.server = ApiServer(self.app, listen, per_client=CONNECTIONS_PER_NODE)
        await self.server.start()
        log.info("keyhole service listening on %s", self.server.url)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        await self.pool.close()
        await self.ports.close()


def _ca_pem(settings: KeyholeSettings) -> str | None:
    """The PEM text the jobs' client trusts for the keyhole service; None when it serves plain HTTP."""
    path = settings.tls_ca or settings.tls_cert
    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"keyhole.tls_ca: cannot read {path}: {exc}") from None
    if not _PEM.fullmatch(text.strip()):
        raise ConfigError(f"keyhole.tls_ca: {path} holds no PEM certificate")
    return text.strip() + "\n"
