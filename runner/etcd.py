"""The runner's link to etcd: one gRPC channel to one or several members, with TLS and etcd's own login.

:func:`etcd_client` builds an :class:`EtcdClient`, which keeps aetcd's API (what the runner calls: ``get``,
``get_prefix``, ``put``, ``delete``, ``transaction``, ``lease``) and replaces only how the channel is made,
since aetcd 1.0 opens insecure channels only:

- TLS (``etcd.ca-file`` / ``cert-file`` / ``key-file``, or ``etcd.tls``) makes a secure channel; the members'
  certificates are checked against one name for all (``etcd.server-name``, default the first member's
  address), because gRPC checks the channel's name, not each dialled address.
- ``etcd.user`` / ``etcd.password``: interceptors on the channel log in with etcd's ``Auth.Authenticate`` at
  the first call (not at connect, so a runner still starts while etcd is away) and send the token as the
  ``token`` metadata of every call. A token etcd no longer accepts (it expired, etcd restarted, or the
  auth store changed) is renewed once and the call repeated; concurrent calls share one renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

import aetcd
import aetcd.exceptions
import aetcd.watcher
import grpc
from aetcd import rpc

from runner.config import Endpoint, EtcdSettings
from runner.errors import ConfigError, StateUnavailable

log = logging.getLogger(__name__)

# A watcher tick reads every active record in one range read; 10,000 records with their Slurm details are
# about 10 MB, past gRPC's 4 MiB default, which failed every tick at that size (found by the benchmarks).
GRPC_OPTIONS: dict[str, Any] = {"grpc.max_receive_message_length": 256 * 2**20}
_AUTHENTICATE = (b"/etcdserverpb.Auth/Authenticate", "/etcdserverpb.Auth/Authenticate")
# What etcd answers when the token must be renewed (rpctypes.ErrInvalidAuthToken, ErrAuthOldRevision).
_STALE_TOKEN = ("invalid auth token", "revision of auth store is old")

ETCD_ERRORS: tuple[type[Exception], ...] = (aetcd.exceptions.ClientError, grpc.RpcError, OSError, TimeoutError)
"""What a call through aetcd raises when etcd does not answer as asked (down, refused, timed out, denied)."""


WATCH_CANCEL_TIMEOUT = 2.0  # seconds a watch's cancel may take before it is left to the channel's close


async def open_watch(client: Any, prefix: bytes) -> Any:
    """A watch on ``prefix``; the task's cancellation is honoured even when aetcd swallowed it while the watch
    was being created (its ``wait_for`` can), which would otherwise leave the task iterating the watch forever."""
    watch = await client.watch_prefix(prefix)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        await cancel_watch(watch)
        raise asyncio.CancelledError
    return watch


async def cancel_watch(watch: Any) -> None:
    """Cancel an aetcd watch, bounded: its cancel waits on the watch stream's lock, which a stream being torn
    down (etcd gone, the client closing) may hold for good."""
    with contextlib.suppress(Exception, TimeoutError):
        async with asyncio.timeout(WATCH_CANCEL_TIMEOUT):
            await watch.cancel()


def unavailable(exc: Exception) -> StateUnavailable:
    """An etcd failure as the runner reports it (503 ``state-unavailable``); its cause goes to the log only.

    Every module that calls etcd maps with ``except ETCD_ERRORS as exc: raise unavailable(exc) from exc``.
    """
    return StateUnavailable(internal=f"etcd: {type(exc).__name__}: {exc}")


def _stale_token(exc: grpc.aio.AioRpcError) -> bool:
    details = exc.details() or ""
    return any(text in details for text in _STALE_TOKEN)


class _Login:
    """The current auth token; one login at a time, its result shared by every call that waited for it."""

    def __init__(self, user: str, password: str, timeout: float | None) -> None:
        self._user = user
        self._password = password
        self._timeout = timeout
        self._token: str | None = None
        self._lock = asyncio.Lock()
        self.stub: Any = None

    async def token(self, stale: str | None = None) -> str:
        """The token to send; a new one if the current one is ``stale`` (or there is none yet)."""
        if self._token is not None and self._token != stale:
            return self._token
        async with self._lock:
            if self._token is None or self._token == stale:
                request = rpc.AuthenticateRequest(name=self._user, password=self._password)
                reply = await self.stub.Authenticate(request, timeout=self._timeout)
                self._token = str(reply.token)
                log.debug("etcd: logged in as %s", self._user)
            return self._token


def _with_token(details: Any, token: str) -> Any:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata["token"] = token
    return details._replace(metadata=metadata)


class _UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, login: _Login) -> None:
        self._login = login

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method in _AUTHENTICATE:  # grpc.aio passes the method as bytes
            return await continuation(details, request)
        token = await self._login.token()
        try:
            return await (await continuation(_with_token(details, token), request))
        except grpc.aio.AioRpcError as exc:
            if not _stale_token(exc):
                raise
        # etcd refused the call before applying it, so repeating it (a transaction too) is safe.
        token = await self._login.token(stale=token)
        return await continuation(_with_token(details, token), request)


class _UnaryStreamToken(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    # Streams carry the current token; a stale one fails the stream, and the caller's next unary call renews it.
    def __init__(self, login: _Login) -> None:
        self._login = login

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, await self._login.token()), request)


class _StreamStreamToken(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    # A separate class: grpc.aio files an interceptor under the first kind it is an instance of.
    def __init__(self, login: _Login) -> None:
        self._login = login

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, await self._login.token()), requests)


class EtcdClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a channel this module makes (TLS, round robin over members, token interceptors)."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(timeout=timeout, options=options)
        self.target = target
        self._credentials = credentials
        self._login = _Login(user, password, timeout) if user and password else None

    async def connect(self) -> None:
        """Make the channel and the stubs; no call goes out yet (the login happens at the first call)."""
        if self._connected.is_set():
            return
        interceptors = None
        if self._login is not None:
            login = self._login
            interceptors = [_UnaryToken(login), _UnaryStreamToken(login), _StreamStreamToken(login)]
        options = list(self._options.items())
        if self._credentials is None:
            channel = grpc.aio.insecure_channel(self.target, options=options, interceptors=interceptors)
        else:
            channel = grpc.aio.secure_channel(self.target, self._credentials, options, interceptors=interceptors)
        self.channel = channel
        if self._login is not None:
            self._login.stub = rpc.AuthStub(channel)
        self.kvstub = rpc.KVStub(channel)
        self.clusterstub = rpc.ClusterStub(channel)
        self.leasestub = rpc.LeaseStub(channel)
        self.maintenancestub = rpc.MaintenanceStub(channel)
        self._watcher = aetcd.watcher.Watcher(rpc.WatchStub(channel), timeout=self._timeout)
        self._connected.set()


def _read(path: Any, field: str) -> bytes | None:
    if path is None:
        return None
    try:
        data: bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"etcd.{field}: cannot read {path}: {exc.strerror}") from None
    return data


def _credentials(etcd: EtcdSettings) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(etcd.ca_file, "ca-file"),
        private_key=_read(etcd.key_file, "key-file"),
        certificate_chain=_read(etcd.cert_file, "cert-file"),
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_link(etcd: EtcdSettings) -> str:
    """How the runner authenticates to etcd, for the start-up log line (never a secret)."""
    parts = ["TLS" if etcd.use_tls else "no TLS"]
    if etcd.cert_file is not None:
        parts.append("client certificate")
    if etcd.user:
        parts.append(f"user {etcd.user}")
    return ", ".join(parts)


def etcd_client(servers: list[Endpoint], etcd: EtcdSettings | None = None, timeout: int = 10) -> EtcdClient:
    """A client for one or several etcd members; gRPC balances and fails over between the listed addresses."""
    if not servers:
        raise ConfigError("no etcd servers configured")
    etcd = etcd or EtcdSettings()
    options = dict(GRPC_OPTIONS)
    if len(servers) == 1:
        target = f"{servers[0].ip}:{servers[0].port}"
    else:
        # gRPC's ipv4: scheme takes a comma-separated address list.
        target = "ipv4:" + ",".join(f"{s.ip}:{s.port}" for s in servers)
        options["grpc.lb_policy_name"] = "round_robin"
    credentials = None
    if etcd.use_tls:
        credentials = _credentials(etcd)
        if etcd.server_name or len(servers) > 1:
            options["grpc.ssl_target_name_override"] = etcd.server_name or servers[0].ip
    elif not all(_is_loopback(s.ip) for s in servers):
        names = ", ".join(f"{s.ip}:{s.port}" for s in servers)
        clear = " (and the etcd password)" if etcd.user else ""
        log.warning("etcd %s without TLS: the network path can read the runner's state and job tokens%s", names, clear)
    password = etcd.password.get_secret_value() if etcd.password is not None else None
    return EtcdClient(
        target, credentials=credentials, user=etcd.user, password=password, timeout=timeout, options=options
    )
