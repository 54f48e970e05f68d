"""A local etcd server process on a free loopback port: for tests, benchmarks and the embedded default.

``EtcdServer(tls=True)`` serves clients over TLS only and demands a client certificate (``--client-cert-auth``),
from a CA made for this server in its temporary directory; ``EtcdServer(auth=EtcdAuth(...))`` switches on
etcd's own authentication with a root user and a runner user limited to one prefix. :meth:`EtcdServer.runner_etcd`
gives the runner's ``etcd`` configuration section for it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from simulator.certs import CertFiles, TestCA
from simulator.etcd_auth import EtcdAuth, enable_auth

log = logging.getLogger(__name__)


class EtcdStartError(RuntimeError):
    """The etcd process did not become healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_etcd_binary() -> str:
    """The etcd binary: ``$ETCD_BINARY``, else ``etcd`` on PATH (Debian's etcd-server)."""
    explicit = os.environ.get("ETCD_BINARY")
    if explicit:
        return explicit
    found = shutil.which("etcd")
    if found is None:
        raise EtcdStartError("no etcd binary: install Debian's etcd-server (scripts/bootstrap does) or set ETCD_BINARY")
    return found


class EtcdServer:
    """One etcd member with a temporary data dir, started with short raft timers so it is ready in well under a second.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        data_dir: Path | None = None,
        binary: str | None = None,
        *,
        tls: bool = False,
        auth: EtcdAuth | None = None,
        auth_token_ttl: int | None = None,
    ) -> None:
        """``auth_token_ttl``: seconds an idle auth token lives (etcd's default is 300)."""
        self.host = host
        self.port = 0
        self.tls = tls
        self.auth = auth
        self._auth_token_ttl = auth_token_ttl
        self.ca: TestCA | None = None
        self.client_files: CertFiles | None = None
        self._binary = binary
        self._given_data_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def runner_etcd(self) -> dict[str, Any]:
        """The runner's ``etcd`` configuration section for this server: its CA, a client certificate (common
        name the runner's user), the runner's user and password; empty for a plain server."""
        section: dict[str, Any] = {}
        if self.client_files is not None:
            files = self.client_files
            section |= {"ca-file": str(files.ca), "cert-file": str(files.cert), "key-file": str(files.key)}
        if self.auth is not None:
            section |= {"user": self.auth.user, "password": self.auth.password}
        return section

    def _make_pki(self, base: Path) -> list[str]:
        self.ca = TestCA(base / "pki")
        server = self.ca.issue("server", ips=[self.host], dns=["localhost"], server=True)
        self.client_files = self.ca.issue(self.auth.user if self.auth else "client")
        return [
            "--cert-file", str(server.cert), "--key-file", str(server.key),
            "--trusted-ca-file", str(server.ca), "--client-cert-auth",
        ]  # fmt: skip

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.client_files is None:
            return None
        context = ssl.create_default_context(cafile=str(self.client_files.ca))
        context.load_cert_chain(self.client_files.cert, self.client_files.key)
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials | None:
        """Credentials for a client holding this server's client certificate; None for a plain server."""
        if self.client_files is None:
            return None
        files = self.client_files
        return grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())

    def start(self, timeout: float = 30.0) -> EtcdServer:
        binary = self._binary or find_etcd_binary()
        if self._given_data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="etcd-")
            base = Path(self._tmp.name)
        else:
            base = self._given_data_dir
            base.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        peer_port = free_port(self.host)
        self._log_path = base / "etcd.log"
        args = [
            binary,
            "--name", "default",
            "--data-dir", str(base / "data"),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", f"http://{self.host}:{peer_port}",
            "--initial-advertise-peer-urls", f"http://{self.host}:{peer_port}",
            "--initial-cluster", f"default=http://{self.host}:{peer_port}",
            "--heartbeat-interval", "10",
            "--election-timeout", "100",
            "--log-level", "warn",
        ]  # fmt: skip
        if self.tls:
            args += self._make_pki(base)
        if self._auth_token_ttl is not None:
            args += ["--auth-token-ttl", str(self._auth_token_ttl)]
        with self._log_path.open("wb") as out:
            # a session of its own: a terminal's Ctrl-C reaches only its parent, which stops it in order
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy(timeout)
        if self.auth is not None:
            try:
                enable_auth(f"{self.host}:{self.port}", self.auth, self.grpc_credentials())
            except grpc.RpcError as exc:
                self.stop()
                raise EtcdStartError(f"cannot enable etcd authentication: {exc}") from exc
        log.info("etcd started at %s (pid %d)", self.endpoint, self._proc.pid)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EtcdStartError(f"etcd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                url = f"{self.endpoint}/health"
                with urllib.request.urlopen(url, timeout=1, context=self._ssl_context()) as response:  # noqa: S310
                    if json.loads(response.read()).get("health") == "true":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.05)
        self.stop()
        raise EtcdStartError(f"etcd not healthy after {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
