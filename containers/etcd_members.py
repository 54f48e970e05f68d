"""The testbed's etcd: how its members start, their TLS material (made per run on the host), etcd's own login.

Every member serves clients and peers over TLS only and demands client certificates from both. A member's
certificate must name the address the runner dials, and Docker assigns that only at start, so members start
waiting for their files (:data:`WAIT_FOR_TLS`, around the image's ``etcd``). Once all have addresses,
:meth:`EtcdSecurity.provision` makes one member certificate naming every member's cluster address, hostname and
loopback (the runner checks every member of a list against one name, the first member's address; see
``runner/etcd.py``) and copies it in with the CA and a client certificate for ``etcdctl`` inside the members
(found through ``ETCDCTL_*`` variables; its common name is ``root``, which etcd takes as the root user). Once
the members are healthy, :meth:`EtcdSecurity.enable_auth` switches etcd's authentication on: a root user,
and the runner's user (also the common name of the runner's client certificate) whose role reads and writes
only keys under :data:`ETCD_PREFIX`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from containers.nodes import Node
from simulator.certs import CertFiles, TestCA, cert_files
from simulator.etcd_auth import EtcdAuth, enable_auth

CLIENT_PORT = 2379
PEER_PORT = 2380
TLS_DIR = "/etc/bwvisu-etcd"
READY = f"{TLS_DIR}/ready"
ETCD_PREFIX = "/bwvisu"
RUNNER_ETCD_USER = "bwvisu-runner"
_MEMBER = "member"
_ETCDCTL = "root"

# tini, then a shell that waits (at most 120 s) for the files and becomes etcd with the testbed's flags.
WAIT_FOR_TLS = [
    "/usr/bin/tini", "--", "/bin/sh", "-c",
    'i=0; until [ -e "$0" ]; do i=$((i+1)); [ $i -le 1200 ] || { echo "no $0" >&2; exit 1; }; sleep 0.1; done; '
    'exec etcd "$@"',
    READY,
]  # fmt: skip

MEMBER_ENV = {
    "ETCDCTL_ENDPOINTS": f"https://127.0.0.1:{CLIENT_PORT}",
    "ETCDCTL_CACERT": f"{TLS_DIR}/ca.pem",
    "ETCDCTL_CERT": f"{TLS_DIR}/{_ETCDCTL}.pem",
    "ETCDCTL_KEY": f"{TLS_DIR}/{_ETCDCTL}-key.pem",
}


def member_commands(members: int, run_id: str) -> dict[str, list[str]]:
    """Each member's etcd flags: TLS for clients and peers, client certificates demanded on both."""
    names = [f"etcd{i}" for i in range(1, members + 1)]
    cluster = ",".join(f"{n}=https://{n}:{PEER_PORT}" for n in names)
    tls = {
        "cert-file": f"{TLS_DIR}/{_MEMBER}.pem",
        "key-file": f"{TLS_DIR}/{_MEMBER}-key.pem",
        "trusted-ca-file": f"{TLS_DIR}/ca.pem",
        "peer-cert-file": f"{TLS_DIR}/{_MEMBER}.pem",
        "peer-key-file": f"{TLS_DIR}/{_MEMBER}-key.pem",
        "peer-trusted-ca-file": f"{TLS_DIR}/ca.pem",
    }
    commands: dict[str, list[str]] = {}
    for name in names:
        flags = {
            "name": name,
            "data-dir": "/var/lib/etcd/data",
            "listen-client-urls": f"https://0.0.0.0:{CLIENT_PORT}",
            "advertise-client-urls": f"https://{name}:{CLIENT_PORT}",
            "listen-peer-urls": f"https://0.0.0.0:{PEER_PORT}",
            "initial-advertise-peer-urls": f"https://{name}:{PEER_PORT}",
            "initial-cluster": cluster,
            "initial-cluster-state": "new",
            "initial-cluster-token": f"bwvisu-{run_id}",
            # Short raft timers: a member is elected and healthy within a second.
            "heartbeat-interval": "50",
            "election-timeout": "500",
            **tls,
        }
        argv = [part for key, value in flags.items() for part in (f"--{key}", value)]
        commands[name] = [*argv, "--client-cert-auth", "--peer-client-cert-auth"]
    return commands


class EtcdSecurity:
    """One testbed run's CA, certificates and etcd users; files live in ``directory`` on the host."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ca = TestCA(directory, common_name="bwvisu testbed etcd CA")
        self._ca.issue(RUNNER_ETCD_USER)
        self._ca.issue(_ETCDCTL)
        self.auth = EtcdAuth(prefix=ETCD_PREFIX, user=RUNNER_ETCD_USER)

    def move(self, directory: Path) -> None:
        """The files were moved to ``directory`` (with the testbed's work folder)."""
        self.directory = directory

    @property
    def runner_files(self) -> CertFiles:
        return cert_files(self.directory, RUNNER_ETCD_USER)

    def provision(self, members: list[Node], addresses: list[str]) -> None:
        """Make the member certificate for ``addresses`` and copy it, the CA and etcdctl's certificate in."""
        names = [m.hostname for m in members]
        member = self._ca.issue(_MEMBER, ips=[*addresses, "127.0.0.1"], dns=[*names, "localhost"], server=True)
        etcdctl = cert_files(self.directory, _ETCDCTL)
        files = {
            "ca.pem": member.ca.read_bytes(),
            f"{_MEMBER}.pem": member.cert.read_bytes(),
            f"{_MEMBER}-key.pem": member.key.read_bytes(),
            f"{_ETCDCTL}.pem": etcdctl.cert.read_bytes(),
            f"{_ETCDCTL}-key.pem": etcdctl.key.read_bytes(),
        }
        for node in members:
            node.exec(["mkdir", "-p", "-m", "0700", TLS_DIR])
            node.put_files(TLS_DIR, files)
            node.put_files(TLS_DIR, {"ready": b""})  # last: the member starts etcd once it sees this

    def credentials(self, name: str = RUNNER_ETCD_USER) -> grpc.ChannelCredentials:
        files = cert_files(self.directory, name)
        return grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())

    def enable_auth(self, address: str) -> None:
        """Create root and the runner's user and role through the member at ``address``, then enable auth."""
        enable_auth(f"{address}:{CLIENT_PORT}", self.auth, self.credentials(_ETCDCTL))

    def runner_section(self) -> dict[str, Any]:
        """The runner's ``etcd`` configuration section: CA, client certificate, user and password."""
        files = self.runner_files
        return {
            "ca-file": str(files.ca),
            "cert-file": str(files.cert),
            "key-file": str(files.key),
            "user": self.auth.user,
            "password": self.auth.password,
        }
