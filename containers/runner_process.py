"""A runner attached to a testbed: its configuration, and the child process ``bwvisu-testbed up`` leaves running.

The runner runs on the host (``python -m runner serve --config <state>/config.json``): its API on loopback,
its keyhole service on the host's address on the cluster network (where jobs reach it), SSH to the nodes
with the testbed's key and known_hosts. Its PID is kept in the testbed's state folder so ``status`` can show
it and ``down`` can stop it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import runner

API_USER = "bwvisu-web"
TEMPLATES = Path(runner.__file__).parent / "templates"
PID_FILE = "runner.pid"
LOG_FILE = "runner.log"
CONFIG_FILE = "config.json"


def free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def runner_config(
    base: dict[str, Any],
    *,
    key_path: Path,
    known_hosts: Path,
    keyhole_port: int,
    api_port: int,
    password: str,
    prefix: str,
) -> dict[str, Any]:
    """The runner's config.json: the testbed's cluster configuration (``Testbed.runner_config``) plus where
    the runner listens, its API credentials, its SSH key and known_hosts, and the shipped templates."""
    keyhole = dict(base["keyholed-servers"][0])
    keyhole["port"] = keyhole_port
    return {
        **base,
        "keyholed-servers": [keyhole],
        "etcd_prefix": prefix,
        "templates_dir": str(TEMPLATES),
        "api": {"host": "127.0.0.1", "port": api_port, "user": API_USER, "password": password},
        "ssh": {"client_keys": [str(key_path)], "known_hosts": str(known_hosts), "command_timeout": 20},
        "watcher": {"interval": 1.0},
    }


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class RunnerInfo:
    """What a user needs to talk to an attached runner."""

    pid: int
    url: str
    user: str
    password: str

    def curl_lines(self) -> list[str]:
        auth = f"{self.user}:{self.password}"
        job = (
            '{"uid": "alice", "template-name": "template_webapp.txt", "variables": '
            '{"expected_runtime_in_minutes": "15", "number_of_nodes": "1", "tasks_per_node": "1"}}'
        )
        return [
            f"curl -u '{auth}' {self.url}/jobs",
            f"curl -u '{auth}' -H 'Content-Type: application/json' -d '{job}' {self.url}/jobs",
        ]


def start(state: Path, config: dict[str, Any]) -> RunnerInfo:
    """Write ``config.json`` into ``state`` and start the runner as a detached child process; returns at once."""
    config_path = state / CONFIG_FILE
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    config_path.chmod(0o600)  # holds the API password
    with (state / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the CLI; stopped by `down`
        )
    (state / PID_FILE).write_text(f"{proc.pid}\n")
    api = config["api"]
    return RunnerInfo(proc.pid, f"http://{api['host']}:{api['port']}", api["user"], api["password"])


def info(state: Path) -> RunnerInfo | None:
    """The runner recorded in ``state``, or None."""
    try:
        pid = int((state / PID_FILE).read_text().strip())
        api = json.loads((state / CONFIG_FILE).read_text())["api"]
    except (OSError, ValueError, KeyError):
        return None
    return RunnerInfo(pid, f"http://{api['host']}:{api['port']}", api["user"], api["password"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child of this process that exited is a zombie until reaped: not alive
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
    if done != 0:
        return False
    try:  # an orphan that exited stays a zombie until init reaps it
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def answers(target: RunnerInfo, timeout: float = 2.0) -> bool:
    """The runner's API answers an authenticated ``GET /jobs``."""
    request = urllib.request.Request(f"{target.url}/jobs")  # noqa: S310 - our own http URL on loopback
    request.add_header("Authorization", "Basic " + b64encode(f"{target.user}:{target.password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(target: RunnerInfo, timeout: float, log_path: Path, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait until the API answers; raise with the runner's log tail if it exits or does not answer in time."""
    deadline = clock() + timeout
    while clock() < deadline:
        if answers(target):
            return
        if not alive(target.pid):
            break
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    raise RuntimeError(f"the runner (pid {target.pid}) did not answer at {target.url}:\n{tail}")


def stop(state: Path, timeout: float = 10.0) -> int | None:
    """Stop the runner recorded in ``state`` (SIGTERM, then SIGKILL); returns its PID if one was running."""
    recorded = info(state)
    if recorded is None or not alive(recorded.pid):
        return None
    os.kill(recorded.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(recorded.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(recorded.pid):
        os.kill(recorded.pid, signal.SIGKILL)
    (state / PID_FILE).unlink(missing_ok=True)
    return recorded.pid
