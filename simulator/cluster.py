"""The public face of the simulator: :class:`SimCluster` builds, starts and stops a whole cluster.

It wires the pieces: users and homes, SSH keys and known_hosts, one :class:`SSHDaemon` per command and
gateway node, the scheduler with its local executor, the gateway services (:mod:`simulator.gateway`),
the shared command log and the fault knobs, and it hands back
endpoints in the shape of the runner's configuration.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from simulator import gateway as sim_gateway
from simulator import site
from simulator.commands import Handler
from simulator.config import ClusterConfig, Role, assign_addresses
from simulator.dispatch import CommandLog, Dispatcher
from simulator.execution import LocalExecutor
from simulator.faults import Faults
from simulator.jobs import Job
from simulator.keys import known_hosts_line, new_key, write_client_key
from simulator.registry import handlers_for
from simulator.scheduler import Scheduler
from simulator.slurmctl import SlurmService
from simulator.sshserver import SSHDaemon
from simulator.sudo import AnyCommand, SudoPolicy
from simulator.users import UserDB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSHEndpoint:
    """Where to SSH to a command node."""

    node: str
    host: str
    port: int
    user: str


@dataclass(frozen=True)
class GatewayEndpoint:
    """A gateway: its internal and external address and its SSH endpoint (on the internal address)."""

    node: str
    internal_ip: str
    external_ip: str
    host: str
    port: int
    user: str


@dataclass(frozen=True)
class ComputeEndpoint:
    name: str
    address: str


@dataclass(eq=False)
class SimNode:
    """One simulated host."""

    name: str
    roles: set[Role]
    address: str
    external_address: str | None
    services: dict[str, Any] = field(default_factory=dict)
    sshd: SSHDaemon | None = None
    dispatcher: Dispatcher | None = None


def _make_homes(users: UserDB, home_prefix: Path) -> None:
    for account in users.all():
        if Path(account.home).is_relative_to(home_prefix):  # not root's or the system accounts' homes
            Path(account.home).mkdir(parents=True, exist_ok=True)


class SimCluster:
    """A simulated Slurm cluster on loopback addresses. Use ``async with SimCluster(config) as cluster``."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig.default()
        self.command_log = CommandLog()
        self.faults = Faults()
        self.nodes: dict[str, SimNode] = {}
        self._root: Path | None = None
        self._owns_home = self.config.home_prefix is None
        self._client_key = new_key()
        self._scheduler: Scheduler | None = None
        self._executor: LocalExecutor | None = None
        self._slurm: SlurmService | None = None
        self._names: dict[str, str] = {}
        self.users = UserDB([])
        """The passwd database every node shares (filled by :meth:`start`)."""

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> SimCluster:
        cfg = self.config
        self._root = Path(tempfile.mkdtemp(prefix="simcluster-"))
        home = Path(cfg.home_prefix) if cfg.home_prefix else self._root / "home"
        self._home_prefix = home
        users = UserDB.build(
            [(u.name, u.uid, u.group_id) for u in cfg.users], (cfg.service_user, cfg.service_uid), home
        )
        self.users = users
        _make_homes(users, home)
        addresses = assign_addresses(cfg)
        for nc in cfg.nodes:
            address, external = addresses[nc.name]
            self.nodes[nc.name] = SimNode(nc.name, set(nc.roles), address, external)
            self._names[nc.name] = address
            self._names[address] = address
            if external is not None:
                self._names[external] = external
        self._hosts_file = self._root / "hosts"
        self._hosts_file.write_text("".join(f"{n.address}\t{n.name}\n" for n in self.nodes.values()))
        self._executor = LocalExecutor(
            self._root / "spool", cfg.cluster_name, lambda name: str(home / name), self._hosts_file
        )
        self._scheduler = Scheduler(cfg, {n: a for n, (a, _) in addresses.items()}, self._executor)
        self._slurm = SlurmService(
            self._scheduler, users, cfg.cluster_name, cfg.controller_name, cfg.parsable_with_cluster
        )
        self._client_key_path = write_client_key(self._root / "keys", self._client_key)
        known_hosts: list[str] = []
        try:
            for node in self.nodes.values():
                await self._start_node(node, cfg, users)
                if node.sshd is not None:
                    names = [node.name, *node.sshd.addresses]
                    known_hosts.append(known_hosts_line(names, node.sshd.port, node.sshd.host_key))
        except BaseException:
            await self.stop()
            raise
        self._known_hosts = self._root / "known_hosts"
        self._known_hosts.write_text("".join(line + "\n" for line in known_hosts))
        log.info("simulated cluster %s started in %s", cfg.cluster_name, self._root)
        return self

    async def _start_node(self, node: SimNode, cfg: ClusterConfig, users: UserDB) -> None:
        node.services["users"] = users
        node.services["slurm"] = self._slurm
        handlers: dict[str, Handler]
        handlers, readers = handlers_for(node.roles, sim_gateway.HANDLERS)
        if Role.GATEWAY in node.roles:
            assert node.external_address is not None
            node.services["gateway"] = sim_gateway.GatewayService(
                listen_addresses=[node.external_address, node.address]
            )
        if not node.roles & {Role.COMMAND, Role.GATEWAY}:
            return
        sudo: SudoPolicy = AnyCommand(frozenset({cfg.service_user}))
        programs: dict[str, str] = {}
        if cfg.site is not None:
            sudo = site.sudo_policy(node.roles, cfg)
            programs = site.installed(cfg.site)
            handlers.update(site.handlers(node.roles, cfg.site))
            readers.update(site.stdin_readers(cfg.site, readers))
            compute = [n.address for n in self.nodes.values() if Role.COMPUTE in n.roles]
            node.services.update(site.services(node.roles, cfg, compute))
        node.dispatcher = Dispatcher(
            node=node,
            node_name=node.name,
            handlers=handlers,
            stdin_readers=readers,
            users=users,
            sudo=sudo,
            resolve=self.resolve,
            services=node.services,
            command_log=self.command_log,
            faults=self.faults,
            installed=programs,
        )
        listen = [node.address] + ([node.external_address] if node.external_address else [])
        port = next(n.ssh_port for n in cfg.nodes if n.name == node.name)
        login_users = {cfg.service_user, *(u.name for u in cfg.users)}
        node.sshd = SSHDaemon(
            node_name=node.name,
            addresses=listen,
            port=port,
            host_key=new_key(),
            authorized=[self._client_key],
            login_users=login_users,
            dispatcher=node.dispatcher,
            max_sessions=cfg.max_sessions,
        )
        await node.sshd.start()

    async def stop(self) -> None:
        for node in self.nodes.values():
            if node.sshd is not None:
                await node.sshd.stop()
            gateway = node.services.pop("gateway", None)
            if gateway is not None:
                await gateway.close()
        if self._scheduler is not None:
            self._scheduler.close()
        if self._executor is not None:
            await self._executor.close()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def __aenter__(self) -> SimCluster:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- endpoints ----------------------------------------------------------------------------

    def _sshd(self, node: SimNode) -> SSHDaemon:
        assert node.sshd is not None, f"{node.name} runs no sshd"
        return node.sshd

    @property
    def command_nodes(self) -> list[SSHEndpoint]:
        user = self.config.service_user
        return [
            SSHEndpoint(n.name, n.address, self._sshd(n).port, user)
            for n in self.nodes.values()
            if Role.COMMAND in n.roles
        ]

    @property
    def gateway_nodes(self) -> list[GatewayEndpoint]:
        user = self.config.service_user
        return [
            GatewayEndpoint(n.name, n.address, n.external_address or n.address, n.address, self._sshd(n).port, user)
            for n in self.nodes.values()
            if Role.GATEWAY in n.roles
        ]

    @property
    def compute_nodes(self) -> list[ComputeEndpoint]:
        return [ComputeEndpoint(n.name, n.address) for n in self.nodes.values() if Role.COMPUTE in n.roles]

    @property
    def client_key_path(self) -> Path:
        return self._client_key_path

    @property
    def known_hosts_path(self) -> Path:
        return self._known_hosts

    @property
    def hosts_file(self) -> Path:
        """``/etc/hosts``-style ``address<TAB>name`` lines for every node."""
        return self._hosts_file

    @property
    def home_prefix(self) -> Path:
        return self._home_prefix

    @property
    def hosts(self) -> dict[str, str]:
        """Node name -> address."""
        return {n.name: n.address for n in self.nodes.values()}

    def resolve(self, name: str) -> str:
        """A node name or address -> its loopback address; ``KeyError`` for anything else."""
        return self._names[name]

    def runner_config(self) -> dict[str, Any]:
        """The cluster part of a bwVisu runner config.json; in the site mode, with the helpers and the site's limits."""
        config: dict[str, Any] = {
            "bwvisu-home-prefix": str(self.home_prefix),
            "command-nodes": [{"ip": e.host, "user": e.user, "port": e.port} for e in self.command_nodes],
            "gateway-nodes": [
                {"internal-ip": g.internal_ip, "external-ip": g.external_ip, "user": g.user, "port": g.port}
                for g in self.gateway_nodes
            ],
        }
        site_cfg = self.config.site
        if site_cfg is not None:
            networks = site_cfg.compute_networks or [f"{c.address}/32" for c in self.compute_nodes]
            config |= {
                "command-node-helper": site_cfg.slurm_as_path,
                "gateway-helper": site_cfg.forward_path,
                "keyholed-port-range": {"min": site_cfg.port_min, "max": site_cfg.port_max},
                "compute-networks": networks,
                "min-uid": site_cfg.min_uid,
            }
        return config

    async def connect(self, node: str, user: str | None = None) -> asyncssh.SSHClientConnection:
        """An SSH client connection to ``node`` as the runner would open it (key and known_hosts checked)."""
        sshd = self._sshd(self.nodes[node])
        return await asyncssh.connect(
            sshd.addresses[0],
            sshd.port,
            username=user or self.config.service_user,
            client_keys=[str(self.client_key_path)],
            known_hosts=str(self.known_hosts_path),
            agent_path=None,
            config=None,
        )

    # --- state and faults ---------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "cluster not started"
        return self._scheduler

    @property
    def executor(self) -> LocalExecutor:
        assert self._executor is not None, "cluster not started"
        return self._executor

    def job(self, job_id: int) -> Job:
        return self.scheduler.jobs[job_id]

    def gateway_service(self, node: str) -> sim_gateway.GatewayService:
        """The node's ``GatewayService`` (rule table and forwarders)."""
        service: sim_gateway.GatewayService = self.nodes[node].services["gateway"]
        return service

    async def node_down(self, node: str) -> None:
        """The node's sshd stops: connections are refused and open ones cut."""
        await self._sshd(self.nodes[node]).stop()

    async def node_up(self, node: str) -> None:
        await self._sshd(self.nodes[node]).start()

    def fail_node(self, node: str) -> None:
        """A compute node dies: DOWN, its jobs end NODE_FAIL."""
        self.scheduler.fail_node(node)

    def resume_node(self, node: str) -> None:
        self.scheduler.resume_node(node)

    @property
    def controller_up(self) -> bool:
        assert self._slurm is not None
        return self._slurm.controller_up

    @controller_up.setter
    def controller_up(self, up: bool) -> None:
        """Down: squeue/sbatch/scancel/scontrol (and sacct, via slurmdbd) fail as Slurm does."""
        assert self._slurm is not None
        self._slurm.controller_up = up
        self._slurm.dbd_up = up

    def pause_scheduling(self) -> None:
        """No job starts until :meth:`resume_scheduling` (keeps submitted jobs PENDING)."""
        self.scheduler.paused = True

    def resume_scheduling(self) -> None:
        self.scheduler.paused = False
        self.scheduler.request_schedule()
