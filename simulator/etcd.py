"""A local etcd server process on a free loopback port: for tests, benchmarks and the embedded default."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

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

    def __init__(self, host: str = "127.0.0.1", data_dir: Path | None = None, binary: str | None = None) -> None:
        self.host = host
        self.port = 0
        self._binary = binary
        self._given_data_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

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
        with self._log_path.open("wb") as out:
            self._proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self._wait_healthy(timeout)
        log.info("etcd started at %s (pid %d)", self.endpoint, self._proc.pid)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EtcdStartError(f"etcd exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1) as response:  # noqa: S310
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
