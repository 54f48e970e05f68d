"""A runner attached to a testbed, in its own container (the runner image, ``containers/runner``).

The container runs ``python -m runner serve --config /etc/runner/config.json`` as the image's unprivileged user,
on the testbed's cluster network under the name :data:`HOSTNAME` (where jobs on compute nodes reach its keyhole
service, as they would a site's runner host), its API published on the host's loopback only. Its configuration,
SSH key, known_hosts and etcd's CA, client certificate and key are copies in the testbed's state folder
(``runner/``), readable by the container's user alone and mounted read-only at :data:`CONFIG_DIR`; its root file
system is read-only too, with no capabilities and no privilege gain. ``runner.json`` in the state folder says which
container it is and how to reach it, so ``status`` can show it and ``down`` can stop it (SIGTERM, as Docker and
systemd stop a service); the container carries the testbed's labels, so removing the testbed removes it as well.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from docker.errors import APIError, NotFound

from containers.images import Progress, build_all, tag_for
from containers.nodes import labels_for

if TYPE_CHECKING:
    from containers.testbed import Testbed

API_USER = "bwvisu-web"
HOSTNAME = "runner"
CONFIG_DIR = "/etc/runner"
"""Where the container finds its configuration and keys (mounted read-only)."""
API_PORT = 8080
KEYHOLE_PORT = 4243
INFO_FILE = "runner.json"
MOUNT_DIR = "runner"
"""The folder of the state folder mounted at :data:`CONFIG_DIR`."""
CONFIG_FILE = f"{MOUNT_DIR}/config.json"
STOP_TIMEOUT_S = 10
INIT = ["/usr/bin/tini", "--"]
"""The image's PID 1, which hands signals on to the runner (a ``command`` given to :func:`start` runs under it)."""


def runner_config(base: dict[str, Any], *, password: str, prefix: str) -> dict[str, Any]:
    """The container's config.json: the testbed's cluster configuration (``Testbed.runner_config``) with the
    keyhole service at :data:`HOSTNAME`, the API on every address of the container (published on the host's
    loopback only), its credentials, and the key files at their places under :data:`CONFIG_DIR`."""
    etcd = {
        **base["etcd"],
        "ca-file": f"{CONFIG_DIR}/etcd/ca.pem",
        "cert-file": f"{CONFIG_DIR}/etcd/client.pem",
        "key-file": f"{CONFIG_DIR}/etcd/client-key.pem",
    }
    return {
        **base,
        "keyholed-servers": [{"ip": HOSTNAME, "port": KEYHOLE_PORT}],
        "etcd": etcd,
        "etcd_prefix": prefix,
        "api": {"host": "0.0.0.0", "port": API_PORT, "user": API_USER, "password": password},  # noqa: S104
        "ssh": {
            "client_keys": [f"{CONFIG_DIR}/ssh/id_ed25519"],
            "known_hosts": f"{CONFIG_DIR}/ssh/known_hosts",
            "command_timeout": 20,
        },
        "watcher": {"interval": 1.0},
    }


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class RunnerInfo:
    """What a user needs to talk to an attached runner."""

    container: str
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


def _image_user(tag: str) -> tuple[int, int]:
    client = docker.from_env()
    try:
        user = str(client.images.get(tag).attrs["Config"]["User"])
    finally:
        client.close()
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or not gid.isdigit():
        raise RuntimeError(f"{tag}: its USER must be numeric uid:gid, not {user!r}")
    return int(uid), int(gid)


def prepare_mount(mount: Path, config: dict[str, Any], files: dict[str, Path], owner: tuple[int, int] | None) -> None:
    """Fill ``mount`` with ``config.json`` and copies of ``files`` (path under the mount -> source), each 0600 and
    its folders 0700, owned by ``owner`` (uid, gid) when given (this process runs as root)."""
    mount.mkdir(mode=0o700)
    contents = {"config.json": (json.dumps(config, indent=2) + "\n").encode()}
    contents |= {name: source.read_bytes() for name, source in files.items()}
    for name, data in contents.items():
        path = mount / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(data)
    if owner is not None:
        for path in [mount, *mount.rglob("*")]:
            os.chown(path, *owner)


def start(
    testbed: Testbed,
    state: Path,
    *,
    prefix: str,
    api_port: int = 0,
    progress: Progress | None = None,
    command: list[str] | None = None,
    user: str | None = None,
    extra_config: dict[str, Any] | None = None,
    extra_files: dict[str, Path] | None = None,
) -> RunnerInfo:
    """Start the testbed's runner container (the image is built first unless cached); returns once it is
    created, before its API answers (:func:`wait_ready`). Its API is published on 127.0.0.1 at ``api_port``
    (0: a free one). ``command`` replaces the image's command line below its init (e.g. with a service unit's
    ``ExecStart``), ``user`` its user (when this process runs as root: otherwise the container runs as this
    process's user, who owns the mounted files). ``extra_config`` replaces top-level fields of its config.json;
    ``extra_files`` (path under :data:`CONFIG_DIR` -> source) are copied in beside the keys (e.g. templates)."""
    build_all(progress, {"runner"})
    tag = tag_for("runner")
    password = new_password()
    config = runner_config(testbed.runner_config(), password=password, prefix=prefix) | (extra_config or {})
    etcd_files = testbed.etcd_security.runner_files
    files = {
        "ssh/id_ed25519": testbed.ssh_key.private_path,
        "ssh/known_hosts": testbed.known_hosts_path,
        "etcd/ca.pem": etcd_files.ca,
        "etcd/client.pem": etcd_files.cert,
        "etcd/client-key.pem": etcd_files.key,
    } | (extra_files or {})
    as_root = os.getuid() == 0
    # As root, the files go to the image's user; otherwise the container runs as this user (never as root).
    prepare_mount(state / MOUNT_DIR, config, files, _image_user(tag) if as_root else None)
    name = f"bwvisu-{testbed.run_id}-{HOSTNAME}"
    client = docker.from_env()
    try:
        container = client.containers.run(
            tag,
            detach=True,
            name=name,
            hostname=HOSTNAME,
            network=testbed.network("cluster").name,
            labels=labels_for(testbed.run_id, HOSTNAME),
            ports={f"{API_PORT}/tcp": ("127.0.0.1", api_port) if api_port else ("127.0.0.1",)},
            volumes={str(state / MOUNT_DIR): {"bind": CONFIG_DIR, "mode": "ro"}},
            read_only=True,
            tmpfs={"/tmp": "size=16m,mode=1777"},  # noqa: S108 - the container's own, empty
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            **_overrides(command, user if as_root else f"{os.getuid()}:{os.getgid()}"),
        )
        container.reload()
        host_port = int(container.attrs["NetworkSettings"]["Ports"][f"{API_PORT}/tcp"][0]["HostPort"])
    finally:
        client.close()
    info = RunnerInfo(name, f"http://127.0.0.1:{host_port}", API_USER, password)
    (state / INFO_FILE).write_text(json.dumps(asdict(info)) + "\n")
    (state / INFO_FILE).chmod(0o600)  # holds the API password
    return info


def _overrides(command: list[str] | None, user: str | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if command is not None:
        overrides |= {"entrypoint": [*INIT, command[0]], "command": command[1:]}
    if user is not None:
        overrides["user"] = user
    return overrides


def info(state: Path) -> RunnerInfo | None:
    """The runner recorded in ``state``, or None."""
    try:
        return RunnerInfo(**json.loads((state / INFO_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def status(target: RunnerInfo) -> str | None:
    """The container's state (``running``, ``exited``, ...), or None when it is gone."""
    client = docker.from_env()
    try:
        return str(client.containers.get(target.container).status)
    except NotFound:
        return None
    finally:
        client.close()


def logs(target: RunnerInfo, tail: int = 60) -> str:
    """The runner's last log lines (its container's output)."""
    client = docker.from_env()
    try:
        data: bytes = client.containers.get(target.container).logs(tail=tail)
        return data.decode(errors="replace")
    except (NotFound, APIError) as exc:
        return f"<no logs: {exc}>"
    finally:
        client.close()


def answers(target: RunnerInfo, timeout: float = 2.0) -> bool:
    """The runner's API answers an authenticated ``GET /jobs``."""
    request = urllib.request.Request(f"{target.url}/jobs")  # noqa: S310 - our own http URL on loopback
    request.add_header("Authorization", "Basic " + b64encode(f"{target.user}:{target.password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(target: RunnerInfo, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Wait until the API answers; raise with the runner's log tail if its container stops or it does not answer."""
    deadline = clock() + timeout
    while clock() < deadline:
        if answers(target):
            return
        if status(target) != "running":
            break
        time.sleep(0.2)
    raise RuntimeError(f"the runner ({target.container}) did not answer at {target.url}:\n{logs(target)}")


def stop(state: Path) -> str | None:
    """Stop the runner recorded in ``state`` (SIGTERM, SIGKILL after a grace period) and remove its container
    and mounted files; returns the container's name if it was running."""
    recorded = info(state)
    if recorded is None:
        return None
    client = docker.from_env()
    try:
        container = client.containers.get(recorded.container)
        was_running = container.status == "running"
        container.stop(timeout=STOP_TIMEOUT_S)
        container.remove(v=True)
    except NotFound:
        was_running = False
    finally:
        client.close()
    (state / INFO_FILE).unlink(missing_ok=True)
    shutil.rmtree(state / MOUNT_DIR, ignore_errors=True)
    return recorded.container if was_running else None
