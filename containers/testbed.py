"""A real Slurm cluster in containers: start it, wait until it is really ready, hand back endpoints, stop it.

``Testbed(TestbedSpec(...)).start()`` builds (or finds cached) images, creates a cluster network and a
public network, starts the controller, compute, command, gateway and etcd containers plus a client
container on the public network, and returns only when ``scontrol ping`` answers, every compute node is
idle, sshd accepts the runner's key on every command and gateway node, and etcd reports healthy (over TLS,
with its authentication on: :mod:`containers.etcd_members`).
``stop()`` removes everything by label, also after a failed start.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from testcontainers.core.network import Network

from bwvisu_site.gateway import bwvisu_forward
from containers import readiness
from containers.cleanup import remove_by_label
from containers.etcd_members import CLIENT_PORT, ETCD_PREFIX, MEMBER_ENV, WAIT_FOR_TLS, EtcdSecurity, member_commands
from containers.images import Progress, build_all, tag_for
from containers.nodes import ExecResult, Node, create_network
from containers.slurmconf import CONTROLLER_HOST, compute_hostnames, compute_hosts, render_files
from containers.sshkeys import ClientKey, generate_client_key, host_pattern, known_hosts_line

log = logging.getLogger(__name__)

RUNNER_USER = "bwvisu"
"""The runner's account, set up as bwvisu_site says: it may sudo only the helpers below."""
COMPAT_USER = "bwvisu-compat"
"""A second account with bwVisu's plain sudo rules (``sudo -u USER`` Slurm, ``sudo iptables``): the default path."""
SLURM_AS = "/usr/local/sbin/bwvisu-slurm-as"
FORWARD = "/usr/local/sbin/bwvisu-forward"
PORT_MIN, PORT_MAX = 50000, 60000
EPHEMERAL_BELOW_RANGE = {"net.ipv4.ip_local_port_range": f"32768 {PORT_MIN - 1}"}
"""Outgoing connections' ports below the forwarding range: nodes sharing a container share its ports, and a job
could not listen on its assigned port while any connection there (slurmd's, a keyhole client's) holds it. Gateways
too: ``runner check`` (``ephemeral-ports``) fails a gateway whose outgoing connections may take a forward's port."""
HOME_PREFIX = "/home"


@dataclass(frozen=True)
class TestbedSpec:
    """How big a cluster to start."""

    __test__ = False  # not a pytest test class

    compute: int = 2
    gateways: int = 2
    command: int = 1
    etcd_members: int = 1
    client: bool = True
    slurmd_per_host: int = 1
    """Compute nodes per compute container (each its own slurmd, NodeName and port: :mod:`containers.slurmconf`)."""

    def __post_init__(self) -> None:
        if self.etcd_members not in (1, 3):
            raise ValueError("etcd runs with 1 or 3 members")
        if min(self.compute, self.gateways, self.command) < 1:
            raise ValueError("a testbed needs at least one compute, gateway and command node")
        if self.slurmd_per_host < 1:
            raise ValueError("a compute container runs at least one slurmd")


@dataclass(frozen=True)
class NodeEndpoint:
    """Where one node can be reached: its addresses per network, and SSH as seen from the host."""

    hostname: str
    role: str
    container: str
    cluster_ip: str
    public_ip: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None
    host_ports: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoints:
    """Every node's endpoint, by role, plus the networks' facts a runner needs."""

    controller: NodeEndpoint
    compute: list[NodeEndpoint]
    command: list[NodeEndpoint]
    gateways: list[NodeEndpoint]
    etcd: list[NodeEndpoint]
    client: NodeEndpoint | None
    cluster_subnet: str
    cluster_host_ip: str
    """The host's own address on the cluster network: where jobs reach a runner running on the host."""


class Testbed:
    """One containerised cluster. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, spec: TestbedSpec | None = None, progress: Progress | None = None, workdir: Path | None = None
    ) -> None:
        """``workdir`` holds the SSH key, known_hosts and etcd's certificates; a temporary one (removed on stop)
        by default."""
        self.spec = spec or TestbedSpec()
        self.run_id = secrets.token_hex(4)
        self._say = progress or (lambda msg: log.info("%s", msg))
        self._keep_workdir = workdir is not None
        self._tmp = workdir or Path(tempfile.mkdtemp(prefix=f"bwvisu-testbed-{self.run_id}-"))
        self.nodes: dict[str, Node] = {}
        self._networks: dict[str, Network] = {}
        self._endpoints: Endpoints | None = None
        self.ssh_key: ClientKey = generate_client_key(self._tmp / "ssh")
        self.known_hosts_path = self._tmp / "ssh" / "known_hosts"
        self.etcd_security = EtcdSecurity(self._tmp / "etcd-tls")
        self.timings: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Testbed:
        """Build images, start every container, wait for readiness. On any failure, remove everything."""
        try:
            t0 = time.monotonic()
            roles = {"controller", "compute", "command", "gateway", "etcd"}
            build_all(self._say, roles)
            self.timings["images"] = time.monotonic() - t0
            t1 = time.monotonic()
            self._start_containers()
            self._say(f"testbed {self.run_id}: containers started, waiting for readiness")
            readiness.wait_etcd(self, self._say)
            self.etcd_security.enable_auth(self.nodes_of("etcd")[0].ip(self._networks["cluster"]))
            self._say(f"testbed {self.run_id}: etcd authentication on")
            readiness.wait_ready(self, self._say)
            self._endpoints = self._collect_endpoints()
            self._write_known_hosts()
            readiness.wait_ssh(self, self._say)
            self.timings["ready"] = time.monotonic() - t1
            self._say(f"testbed {self.run_id}: ready in {self.timings['ready']:.1f} s")
        except BaseException:
            self._say(f"testbed {self.run_id}: start failed, removing its containers")
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove every container and network of this testbed (by label) and its temporary files."""
        for node in self.nodes.values():
            node.stop()
        remove_by_label(self.run_id)
        self.nodes.clear()
        self._networks.clear()
        if not self._keep_workdir:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def restart(self, hostname: str) -> None:
        """Start a node again (stopped or running), refresh endpoints and known_hosts, and wait until it serves.

        Addresses and published ports may change across a restart; the node's SSH host key does not.
        """
        node = self.node(hostname)
        node.container.get_wrapped_container().restart(timeout=2)
        self._endpoints = self._collect_endpoints()
        self._write_known_hosts()
        readiness.wait_node(self, node)

    def move_workdir(self, destination: Path) -> None:
        """Move the work folder (SSH key, known_hosts, etcd's certificates); later paths point there."""
        self._tmp.rename(destination)
        self._tmp = destination
        self.ssh_key = ClientKey(destination / "ssh" / self.ssh_key.private_path.name, self.ssh_key.public_line)
        self.known_hosts_path = destination / "ssh" / "known_hosts"
        self.etcd_security.move(destination / "etcd-tls")

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start_containers(self) -> None:
        spec = self.spec
        cluster = create_network(self.run_id, "cluster")
        self._networks["cluster"] = cluster
        public = create_network(self.run_id, "public")
        self._networks["public"] = public
        files = render_files(spec.compute, per_host=spec.slurmd_per_host)
        slurm_env = files.environment()
        ssh_env = {"RUNNER_AUTHORIZED_KEY": self.ssh_key.public_line}

        def add(node: Node) -> None:
            self._say(f"testbed {self.run_id}: starting {node.hostname}")
            self.nodes[node.hostname] = node.start()

        for name, argv in member_commands(spec.etcd_members, self.run_id).items():
            add(
                Node(
                    self.run_id, "etcd", name, tag_for("etcd"), cluster, env=MEMBER_ENV, command=argv,
                    entrypoint=WAIT_FOR_TLS, publish=(CLIENT_PORT,),
                )
            )  # fmt: skip
        members = self.nodes_of("etcd")
        self.etcd_security.provision(members, [m.ip(cluster) for m in members])
        add(Node(self.run_id, "controller", CONTROLLER_HOST, tag_for("controller"), cluster, env=slurm_env))
        if spec.slurmd_per_host == 1:
            for name in compute_hostnames(spec.compute):
                add(Node(self.run_id, "compute", name, tag_for("compute"), cluster, env=slurm_env))
        else:
            for host, names in compute_hosts(spec.compute, spec.slurmd_per_host).items():
                add(
                    Node(
                        self.run_id, "compute", host, tag_for("compute"), cluster, env=slurm_env,
                        command=multi_slurmd_command(names), aliases=tuple(names), sysctls=EPHEMERAL_BELOW_RANGE,
                    )
                )  # fmt: skip
        for i in range(1, spec.command + 1):
            env = {**slurm_env, **ssh_env}
            add(Node(self.run_id, "command", f"command{i}", tag_for("command"), cluster, env=env, publish_ssh=True))
        subnet = self.cluster_subnet()
        forward_conf = base64.b64encode(forward_config(subnet).encode()).decode()
        for i in range(1, spec.gateways + 1):
            env = {**ssh_env, "CLUSTER_SUBNET": subnet, "FORWARD_CONF_B64": forward_conf}
            add(
                Node(
                    self.run_id, "gateway", f"gateway{i}", tag_for("gateway"), cluster, public=public, env=env,
                    publish_ssh=True, cap_add=("NET_ADMIN",),
                    sysctls={"net.ipv4.ip_forward": "1", **EPHEMERAL_BELOW_RANGE},
                )
            )  # fmt: skip
        if spec.client:
            # The user's machine: on the public network only, with Xpra and nc from the compute image.
            client = Node(self.run_id, "client", "client", tag_for("compute"), public, env={"TESTBED_ROLE": "client"})
            add(client)

    # -- facts -----------------------------------------------------------------------------------

    def network(self, kind: str) -> Network:
        """The ``cluster`` or ``public`` network."""
        return self._networks[kind]

    def cluster_subnet(self) -> str:
        return _ipam(self._networks["cluster"])["Subnet"]

    def slurm_nodes(self) -> list[str]:
        """Every compute node's Slurm name (a container's hostname, or one of its aliases at scale)."""
        return compute_hostnames(self.spec.compute)

    def node(self, hostname: str) -> Node:
        return self.nodes[hostname]

    def nodes_of(self, role: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == role]

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("the testbed is not started")
        return self._endpoints

    def _endpoint(self, node: Node) -> NodeEndpoint:
        public = self._networks["public"]
        on_cluster = node.cluster is self._networks["cluster"]
        ssh_port = node.published_port(22) if node.publish_ssh else None
        return NodeEndpoint(
            hostname=node.hostname,
            role=node.role,
            container=node.container_name,
            cluster_ip=node.ip(node.cluster) if on_cluster else "",
            public_ip=node.ip(public) if (node.public is not None or not on_cluster) else None,
            ssh_host="127.0.0.1" if ssh_port else None,
            ssh_port=ssh_port,
            host_ports={p: node.published_port(p) for p in node.publish},
        )

    def _collect_endpoints(self) -> Endpoints:
        by_role = {role: [self._endpoint(n) for n in self.nodes_of(role)] for role in
                   ("controller", "compute", "command", "gateway", "etcd", "client")}  # fmt: skip
        return Endpoints(
            controller=by_role["controller"][0],
            compute=by_role["compute"],
            command=by_role["command"],
            gateways=by_role["gateway"],
            etcd=by_role["etcd"],
            client=by_role["client"][0] if by_role["client"] else None,
            cluster_subnet=self.cluster_subnet(),
            cluster_host_ip=_ipam(self._networks["cluster"])["Gateway"],
        )

    def _write_known_hosts(self) -> None:
        lines = []
        for ep in [*self.endpoints.command, *self.endpoints.gateways]:
            key = self.node(ep.hostname).exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.strip()
            assert ep.ssh_port is not None
            names = [host_pattern("127.0.0.1", ep.ssh_port), ep.cluster_ip, ep.hostname]
            lines.append(known_hosts_line(names, key))
        self.known_hosts_path.write_text("\n".join(lines) + "\n")

    def runner_config(self, keyhole_ip: str | None = None, keyhole_port: int = 4243) -> dict[str, Any]:
        """A runner configuration for this cluster: bwVisu's fields (SPEC "Configuration") plus the site helpers.

        Addresses are the nodes' cluster-network addresses, which a runner container on the cluster network
        and a runner on the host (through the Docker bridge) both reach. ``keyhole_ip`` defaults to the
        host's address on the cluster network, where jobs reach a runner running on the host. etcd is reached
        over TLS with the runner's client certificate, user and password; its user may use only keys under
        ``etcd_prefix`` (:data:`~containers.etcd_members.ETCD_PREFIX`: nest other prefixes below it).
        The runner logs in as :data:`RUNNER_USER` and goes through the helpers, within the gateways' port range
        and compute network.
        """
        ep = self.endpoints
        return {
            "bwvisu-home-prefix": HOME_PREFIX,
            "command-nodes": [{"ip": n.cluster_ip, "user": RUNNER_USER, "port": 22} for n in ep.command],
            "gateway-nodes": [
                {"internal-ip": n.cluster_ip, "external-ip": n.public_ip, "user": RUNNER_USER, "port": 22}
                for n in ep.gateways
            ],
            "keyholed-servers": [{"ip": keyhole_ip or ep.cluster_host_ip, "port": keyhole_port}],
            "keyholed-port-range": {"min": PORT_MIN, "max": PORT_MAX},
            "keyholed-max-forwarders-per-job": 4,
            "etcd-servers": [{"ip": n.cluster_ip, "port": CLIENT_PORT} for n in ep.etcd],
            "etcd": self.etcd_security.runner_section(),
            "etcd_prefix": ETCD_PREFIX,
            "forwarding-hostname-suffix": "",
            "command-node-helper": SLURM_AS,
            "gateway-helper": FORWARD,
            "compute-networks": [ep.cluster_subnet],
        }

    # -- running commands ------------------------------------------------------------------------

    def ssh_argv(self, hostname: str, user: str = RUNNER_USER) -> list[str]:
        """The ``ssh`` command line that logs into a command or gateway node as one of the runner's accounts."""
        node = self.node(hostname)
        return [
            "ssh", "-p", str(node.published_port(22)), "-i", str(self.ssh_key.private_path),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_path}", "-o", "ConnectTimeout=10",
            f"{user}@127.0.0.1",
        ]  # fmt: skip

    def ssh(
        self, hostname: str, command: str, stdin: str | None = None, timeout: float = 60, user: str = RUNNER_USER
    ) -> ExecResult:
        """Run ``command`` (one remote shell line, as the runner sends it) over real SSH from the host."""
        proc = subprocess.run(
            [*self.ssh_argv(hostname, user), command], input=stdin or "", capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        return ExecResult(proc.returncode, proc.stdout, proc.stderr)


def multi_slurmd_command(names: list[str]) -> list[str]:
    """A compute container's command line running one daemonised ``slurmd -N NAME`` per node, then waiting.

    It replaces the image's entrypoint script below its init (tini) and sources the same start-up (munge).
    """
    script = (
        ". /usr/local/lib/testbed-init.sh\n"
        'for name in "$@"; do install -d "/var/lib/slurm/slurmd/$name" && slurmd -N "$name" || exit 1; done\n'
        "exec sleep infinity\n"
    )
    return ["bash", "-c", script, "compute-host", *names]


def forward_config(subnet: str) -> str:
    """The gateways' ``/etc/bwvisu/forward.conf``: the runner's port range, the cluster network as compute network."""
    limits = bwvisu_forward.Limits(PORT_MIN, PORT_MAX, (ipaddress.IPv4Network(subnet),))
    return bwvisu_forward.render_config(limits)


def _ipam(network: Network) -> dict[str, str]:
    docker_net = network._network
    assert docker_net is not None
    docker_net.reload()
    config: dict[str, str] = docker_net.attrs["IPAM"]["Config"][0]
    return config
