"""etcd's own authentication switched on for a test etcd: a root user, and a runner user limited to one prefix.

etcd 3.4 enables authentication only once a ``root`` user holding the ``root`` role exists. :func:`enable_auth`
makes that user, a role for the runner that may read and write only keys under ``prefix + "/"``, a runner
user holding it, and then switches authentication on, over etcd's gRPC Auth API (no ``etcdctl`` needed on
the host). Used by :class:`simulator.etcd.EtcdServer` and by the containerised testbed's etcd.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import grpc
from aetcd import rpc


def _password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class EtcdAuth:
    """Who may do what in an etcd with authentication on."""

    prefix: str = "/secure"
    """The runner's role reads and writes keys under ``prefix + "/"`` and nothing else."""
    user: str = "runner"
    password: str = field(default_factory=_password, repr=False)
    root_password: str = field(default_factory=_password, repr=False)

    @property
    def role(self) -> str:
        return f"{self.user}-role"


def prefix_range_end(prefix: bytes) -> bytes:
    """The end of etcd's range holding every key that starts with ``prefix`` (its last byte plus one)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\0"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def enable_auth(
    target: str,
    auth: EtcdAuth,
    credentials: grpc.ChannelCredentials | None = None,
    *,
    server_name: str | None = None,
    timeout: float = 10.0,
) -> None:
    """Create root and the runner's user and role on the etcd at ``target`` (``host:port``), then enable auth."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    channel = (
        grpc.insecure_channel(target, options=options)
        if credentials is None
        else grpc.secure_channel(target, credentials, options=options)
    )
    with channel:
        stub = rpc.AuthStub(channel)
        stub.RoleAdd(rpc.AuthRoleAddRequest(name="root"), timeout=timeout)
        stub.UserAdd(rpc.AuthUserAddRequest(name="root", password=auth.root_password), timeout=timeout)
        stub.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=timeout)
        key = f"{auth.prefix.rstrip('/')}/".encode()
        permission = rpc.Permission(permType=rpc.Permission.READWRITE, key=key, range_end=prefix_range_end(key))
        stub.RoleAdd(rpc.AuthRoleAddRequest(name=auth.role), timeout=timeout)
        stub.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name=auth.role, perm=permission), timeout=timeout)
        stub.UserAdd(rpc.AuthUserAddRequest(name=auth.user, password=auth.password), timeout=timeout)
        stub.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=auth.user, role=auth.role), timeout=timeout)
        stub.AuthEnable(rpc.AuthEnableRequest(), timeout=timeout)
