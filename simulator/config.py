"""The simulated cluster's configuration: nodes and their roles, partitions, users, timing.

A :class:`ClusterConfig` is plain data (pydantic), so a cluster can be described in JSON/TOML, built
with :meth:`ClusterConfig.build` from a few counts, and passed to :class:`simulator.cluster.SimCluster`.
Addresses left empty are assigned at start from a loopback /16 chosen per cluster, so several clusters
can run in one process (or in parallel test processes) without colliding.
"""

from __future__ import annotations

import itertools
import os
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.users import SYSTEM_ACCOUNTS


class Role(StrEnum):
    """What a node does; one node may have several roles."""

    COMMAND = "command"
    COMPUTE = "compute"
    GATEWAY = "gateway"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeConfig(_Model):
    """One simulated host.

    ``address`` is the node's (internal) loopback address; a gateway also has an ``external_address``.
    ``ssh_port`` 0 picks a free port at start. ``cpus`` matters only for compute nodes.
    """

    name: str
    roles: set[Role]
    address: str | None = None
    external_address: str | None = None
    ssh_port: int = 0
    cpus: int = 4
    memory_mb: int = 4000
    """slurm.conf's ``RealMemory`` (MB): what a job without ``--mem`` asks for per node (whole nodes)."""


class UserConfig(_Model):
    """A cluster account: ``sudo -n -u NAME`` works only for these (and for root and the system accounts)."""

    name: str
    uid: int
    gid: int | None = None
    shell: str = "/bin/bash"

    @property
    def group_id(self) -> int:
        return self.uid if self.gid is None else self.gid


class PartitionConfig(_Model):
    """A Slurm partition; ``nodes`` empty means every compute node. Time limits in minutes, None = UNLIMITED."""

    name: str
    nodes: list[str] = Field(default_factory=list)
    default: bool = False
    max_time_minutes: int | None = None
    default_time_minutes: int | None = None


class TimingConfig(_Model):
    """How simulated time maps to real time, so time limits are testable in well under a second.

    ``minute_seconds`` is how many real seconds one minute of a job's time limit lasts.
    ``kill_wait_seconds`` is Slurm's KillWait: SIGTERM, then SIGKILL this much later.
    ``min_job_age_seconds`` is Slurm's MinJobAge: how long a finished job stays visible to squeue/scontrol.
    ``completing_seconds`` models the epilog: how long a job stays COMPLETING after its processes ended.
    """

    minute_seconds: float = 60.0
    kill_wait_seconds: float = 2.0
    min_job_age_seconds: float = 300.0
    completing_seconds: float = 0.0


class SiteConfig(_Model):
    """A cluster set up as ``bwvisu_site`` tells a site to: its sudoers rules and helpers, not blanket sudo.

    The runner's account may then sudo only ``bwvisu-slurm-as`` (command nodes) and ``bwvisu-forward`` (gateways),
    installed at these paths. ``compute_networks`` None means each compute node's address as a /32.
    """

    slurm_as_path: str = "/usr/local/sbin/bwvisu-slurm-as"
    forward_path: str = "/usr/local/sbin/bwvisu-forward"
    min_uid: int = 1000
    max_uid: int | None = 59999
    slurm_commands: list[str] = Field(default_factory=lambda: ["sbatch", "scancel"])
    port_min: int = 50000
    port_max: int = 60000
    compute_networks: list[str] | None = None


class ClusterConfig(_Model):
    """The whole simulated cluster."""

    cluster_name: str = "sim"
    controller_name: str = "sim-ctl"
    nodes: list[NodeConfig]
    partitions: list[PartitionConfig] = Field(default_factory=lambda: [PartitionConfig(name="sim", default=True)])
    users: list[UserConfig] = Field(
        default_factory=lambda: [UserConfig(name="alice", uid=1001), UserConfig(name="bob", uid=1002)]
    )
    service_user: str = "bwvisu"
    """The SSH account the runner logs in as: passwordless sudo (``sudo -n``) to every user, or what ``site`` allows."""
    service_uid: int = 990
    address_prefix: str | None = None
    """First two octets of the loopback /16 for auto-assigned addresses, e.g. ``"127.42"``; None picks one."""
    max_sessions: int = 10
    """OpenSSH's MaxSessions: concurrent channels per SSH connection."""
    first_job_id: int = 1
    parsable_with_cluster: bool = False
    """``sbatch --parsable`` prints ``id;cluster`` (as on a multi-cluster setup) instead of ``id``."""
    timing: TimingConfig = Field(default_factory=TimingConfig)
    home_prefix: str | None = None
    """Directory holding ``$PREFIX/$USER`` homes; None creates a temporary one."""
    site: SiteConfig | None = None
    """None: bwVisu's requirement, the service user may sudo anything as anyone. Else the least-privilege set-up."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        if not any(Role.COMMAND in n.roles for n in self.nodes):
            raise ValueError("a cluster needs at least one command node")
        compute = {n.name for n in self.nodes if Role.COMPUTE in n.roles}
        for part in self.partitions:
            unknown = set(part.nodes) - compute
            if unknown:
                raise ValueError(f"partition {part.name} names unknown compute nodes {sorted(unknown)}")
        if self.partitions and not any(p.default for p in self.partitions):
            self.partitions[0].default = True
        users = [u.name for u in self.users]
        reserved = {self.service_user, "root", *(a.name for a in SYSTEM_ACCOUNTS)}
        if reserved & {*users} or len(set(users)) != len(users):
            raise ValueError("user names must be unique and differ from the service user, root and system accounts")
        return self

    @classmethod
    def build(
        cls,
        *,
        command: int = 2,
        compute: int = 4,
        gateways: int = 2,
        cpus: int = 4,
        users: list[UserConfig] | None = None,
        **kwargs: object,
    ) -> ClusterConfig:
        """A cluster of ``command`` login nodes, ``compute`` nodes with ``cpus`` each and ``gateways``."""
        nodes = [NodeConfig(name=f"sim-login{i + 1}", roles={Role.COMMAND}) for i in range(command)]
        nodes += [NodeConfig(name=f"sim-c{i + 1:03d}", roles={Role.COMPUTE}, cpus=cpus) for i in range(compute)]
        nodes += [NodeConfig(name=f"sim-gw{i + 1}", roles={Role.GATEWAY}) for i in range(gateways)]
        data: dict[str, object] = {"nodes": nodes, **kwargs}
        if users is not None:
            data["users"] = users
        return cls.model_validate(data)

    @classmethod
    def default(cls) -> ClusterConfig:
        """2 command nodes, 4 compute nodes with 4 CPUs, 2 gateways, users alice and bob."""
        return cls.build()


_prefix_counter = itertools.count()


def pick_address_prefix() -> str:
    """A loopback /16 (as ``"127.N"``) unlikely to be used by another cluster in this or another process."""
    second = 16 + (os.getpid() * 31 + next(_prefix_counter) * 7) % 230
    return f"127.{second}"


def assign_addresses(config: ClusterConfig) -> dict[str, tuple[str, str | None]]:
    """Each node's (address, external address or None), filling in the ones the config leaves empty."""
    prefix = config.address_prefix or pick_address_prefix()
    result: dict[str, tuple[str, str | None]] = {}
    for index, node in enumerate(config.nodes):
        address = node.address or f"{prefix}.{index // 250}.{index % 250 + 1}"
        external = node.external_address
        if Role.GATEWAY in node.roles and external is None:
            external = f"{prefix}.{200 + index // 250}.{index % 250 + 1}"
        result[node.name] = (address, external)
    return result
