"""The two clusters the contract suite runs against, behind one small adapter.

A :class:`Backend` gives what the runner itself has of a cluster: an SSH runner (the runner's own
:class:`runner.ssh.SshNode`) to a command node and to a gateway as the runner's account, the site helpers that
account goes through (``None``: bwVisu's plain sudo), the users and compute hostnames, where a user's jobs may
write, a batch script that listens on a TCP port on its compute node, and an address on the compute network that
never answers a connection. Only reading a job's output file on its node and an administrator's view of a
gateway's tables (``iptables-save`` as root) go around SSH, since the runner never does either.

Each cluster comes in two set-ups: the site's (``bwvisu_site``: the account may sudo only the helpers) and
bwVisu's (the account may sudo the Slurm commands as anyone and iptables with any arguments).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from containers.testbed import COMPAT_USER, FORWARD, HOME_PREFIX, RUNNER_USER, SLURM_AS, Testbed
from runner.config import SshSettings
from runner.ssh import SshNode
from simulator.cluster import SimCluster


def normalised_save(text: str) -> str:
    """``iptables-save`` output without its dated comments and packet counters, for before/after comparisons."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(line.split(" [")[0] if line.startswith(":") else line for line in lines) + "\n"


class Backend(Protocol):
    """One cluster as the contract tests see it."""

    name: str
    command: SshNode
    """The first command node, logged in as the runner's account."""
    gateway: SshNode
    """The first gateway, logged in as the runner's account."""
    user: str
    """A cluster user the runner submits for (``sudo -n -u USER``)."""
    other_user: str
    """A second user, who owns none of ``user``'s jobs."""
    slurm_helper: str | None
    """``command-node-helper`` for this set-up; None: ``sudo -n -u USER``."""
    gateway_helper: str | None
    """``gateway-helper`` for this set-up; None: ``sudo -n iptables``."""

    @property
    def compute_hosts(self) -> list[str]: ...

    @property
    def partition(self) -> str:
        """The default partition."""
        ...

    def workdir(self, user: str) -> str: ...

    def listener_script(self, port: int) -> str:
        """A batch script whose job accepts TCP connections on ``port`` at its node's address until cancelled."""
        ...

    async def read_file(self, host: str, path: str) -> str:
        """A file written by a job on compute node ``host``."""
        ...

    def silent_address(self) -> str:
        """An IPv4 address the gateway routes to the compute network where no host answers: connects hang."""
        ...

    async def gateway_tables(self) -> str:
        """The first gateway's filter and nat tables as root sees them (:func:`normalised_save`)."""
        ...

    async def close(self) -> None: ...


@dataclass
class SimBackend:
    cluster: SimCluster
    command: SshNode
    gateway: SshNode
    slurm_helper: str | None = None
    gateway_helper: str | None = None
    name: str = "sim"
    user: str = "alice"
    other_user: str = "bob"

    @classmethod
    def connect(cls, cluster: SimCluster) -> SimBackend:
        settings = SshSettings(client_keys=[cluster.client_key_path], known_hosts=cluster.known_hosts_path)
        cmd = cluster.command_nodes[0]
        gw = cluster.gateway_nodes[0]
        command = SshNode(cmd.host, cmd.port, cmd.user, settings)
        site = cluster.config.site
        helpers = (None, None) if site is None else (site.slurm_as_path, site.forward_path)
        return cls(cluster, command, SshNode(gw.host, gw.port, gw.user, settings), *helpers)

    @property
    def compute_hosts(self) -> list[str]:
        return [c.name for c in self.cluster.compute_nodes]

    @property
    def partition(self) -> str:
        return next(p.name for p in self.cluster.config.partitions if p.default)

    def workdir(self, user: str) -> str:
        return str(self.cluster.home_prefix / user)

    def listener_script(self, port: int) -> str:
        return f"#!/bin/bash\n#SIM-BEHAVIOUR listen port={port}\n"

    async def read_file(self, host: str, path: str) -> str:
        del host  # every simulated node shares this machine's file system
        return await asyncio.to_thread(Path(path).read_text)

    def silent_address(self) -> str:
        # every loopback address answers at once (refused), so the simulator's fault knob drops the connects
        prefix = self.cluster.compute_nodes[0].address.rsplit(".", 2)[0]
        address = f"{prefix}.199.254"
        self.cluster.faults.silence_host(address)
        return address

    async def gateway_tables(self) -> str:
        saved = await self.cluster.gateway_service(self.cluster.gateway_nodes[0].node).iptables_save([])
        return normalised_save(saved.stdout)

    async def close(self) -> None:
        await self.command.close()
        await self.gateway.close()


@dataclass
class TestbedBackend:
    __test__ = False  # not a pytest test class

    testbed: Testbed
    command: SshNode
    gateway: SshNode
    slurm_helper: str | None = None
    gateway_helper: str | None = None
    name: str = "testbed"
    user: str = "alice"
    other_user: str = "bob"
    partition: str = "batch"

    @classmethod
    def connect(cls, testbed: Testbed, *, site: bool = True) -> TestbedBackend:
        """As the site's account (:data:`RUNNER_USER`, through the helpers) or bwVisu's (:data:`COMPAT_USER`)."""
        settings = SshSettings(client_keys=[testbed.ssh_key.private_path], known_hosts=testbed.known_hosts_path)
        ep = testbed.endpoints
        cmd, gw = ep.command[0], ep.gateways[0]
        assert cmd.ssh_host is not None
        assert cmd.ssh_port is not None
        assert gw.ssh_host is not None
        assert gw.ssh_port is not None
        user, helpers = (RUNNER_USER, (SLURM_AS, FORWARD)) if site else (COMPAT_USER, (None, None))
        return cls(
            testbed,
            SshNode(cmd.ssh_host, cmd.ssh_port, user, settings),
            SshNode(gw.ssh_host, gw.ssh_port, user, settings),
            *helpers,
        )

    @property
    def compute_hosts(self) -> list[str]:
        return [c.hostname for c in self.testbed.endpoints.compute]

    def workdir(self, user: str) -> str:
        return f"{HOME_PREFIX}/{user}"

    def listener_script(self, port: int) -> str:
        return (
            "#!/bin/bash\n"
            "exec python3 -c '\n"
            "import socket\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f's.bind(("0.0.0.0", {port}))\n'
            "s.listen()\n"
            "while True:\n"
            "    s.accept()[0].close()\n"
            "'\n"
        )

    async def read_file(self, host: str, path: str) -> str:
        result = await asyncio.to_thread(self.testbed.node(host).exec, ["cat", path])
        assert result.ok, f"cat {path} on {host}: {result.stderr}"
        return result.stdout

    def silent_address(self) -> str:
        # Docker hands out the cluster network's addresses from the bottom; nobody answers ARP for the top one,
        # so a connect waits (for ARP, then for nc's -w) as for a host behind a dropping firewall.
        network = ipaddress.ip_network(self.testbed.endpoints.cluster_subnet)
        return str(network.broadcast_address - 1)

    async def gateway_tables(self) -> str:
        gateway = self.testbed.node(self.testbed.endpoints.gateways[0].hostname)
        saved = await asyncio.to_thread(gateway.exec, ["iptables-save"])
        assert saved.ok, saved.stderr
        return normalised_save(saved.stdout)

    async def close(self) -> None:
        await self.command.close()
        await self.gateway.close()
