"""One container of the testbed: how it is started, how commands run in it, where it can be reached.

Every container and network carries the testbed's labels, so :mod:`containers.cleanup` can remove all of a
testbed's parts by label even after a crash. Containers are started with testcontainers'
:class:`~testcontainers.core.container.DockerContainer` (the reaper is disabled: its image cannot be pulled),
joined to the cluster network under their hostname as alias, and optionally to the public network.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The reaper container's image cannot be pulled here; the testbed removes its parts by label itself.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

log = logging.getLogger(__name__)

LABEL_TESTBED = "org.bwvisu.testbed"
LABEL_RUN = "org.bwvisu.testbed.run"
LABEL_ROLE = "org.bwvisu.testbed.role"
LABEL_CREATED = "org.bwvisu.testbed.created"


class NodeError(RuntimeError):
    """A node did not start or did not become ready; carries the container's last log lines."""


class WaitTimeout(NodeError):
    """A readiness condition did not hold within its bound."""


@dataclass(frozen=True)
class ExecResult:
    """What a command run inside a container returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    """Poll ``check`` until it returns true; raise :class:`WaitTimeout` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def labels_for(run_id: str, role: str | None = None) -> dict[str, str]:
    """The labels every container and network of testbed ``run_id`` carries."""
    labels = {LABEL_TESTBED: "true", LABEL_RUN: run_id, LABEL_CREATED: str(int(time.time()))}
    if role is not None:
        labels[LABEL_ROLE] = role
    return labels


def create_network(run_id: str, kind: str) -> Network:
    """A labelled bridge network named after the testbed run and its kind (``cluster``/``public``)."""
    net = Network(docker_network_kw={"driver": "bridge", "labels": labels_for(run_id, f"net-{kind}")})
    net.name = f"bwvisu-{run_id}-{kind}"
    return net.create()


@dataclass
class Node:
    """A started container with a role and a hostname, on one or two testbed networks."""

    run_id: str
    role: str
    hostname: str
    image: str
    cluster: Network
    public: Network | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    publish_ssh: bool = False
    publish: tuple[int, ...] = ()
    cap_add: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    """More names on the cluster network (a compute host's Slurm node names)."""
    _container: DockerContainer | None = None

    @property
    def container_name(self) -> str:
        return f"bwvisu-{self.run_id}-{self.hostname}"

    def start(self) -> Node:
        """Create and start the container; join the public network if it has one."""
        container = DockerContainer(self.image)
        container.with_name(self.container_name)
        container.with_network(self.cluster).with_network_aliases(self.hostname, *self.aliases)
        for key, value in self.env.items():
            container.with_env(key, value)
        if self.command is not None:
            container.with_command(self.command)
        # Published only on loopback: host-side tools reach SSH and etcd without touching any other address.
        for port in (*((22,) if self.publish_ssh else ()), *self.publish):
            container.ports[f"{port}/tcp"] = ("127.0.0.1",)  # type: ignore[assignment]
        kwargs: dict[str, Any] = {
            "hostname": self.hostname,
            "labels": labels_for(self.run_id, self.role),
        }
        if self.entrypoint is not None:
            kwargs["entrypoint"] = self.entrypoint
        if self.cap_add:
            kwargs["cap_add"] = list(self.cap_add)
        if self.sysctls:
            kwargs["sysctls"] = dict(self.sysctls)
        container.with_kwargs(**kwargs)
        self._container = container
        container.start()
        if self.public is not None:
            self.public.connect(container.get_container_id(), network_aliases=[self.hostname])
        log.debug("started %s (%s)", self.container_name, self.role)
        return self

    @property
    def container(self) -> DockerContainer:
        if self._container is None:
            raise NodeError(f"{self.hostname} is not started")
        return self._container

    @property
    def container_id(self) -> str:
        return str(self.container.get_container_id())

    def _attrs(self) -> dict[str, Any]:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        attrs: dict[str, Any] = wrapped.attrs
        return attrs

    def ip(self, network: Network) -> str:
        """This container's address on ``network``."""
        nets = self._attrs()["NetworkSettings"]["Networks"]
        address = str(nets[network.name]["IPAddress"])
        if not address:
            raise NodeError(f"{self.hostname} has no address on {network.name}")
        return address

    def published_port(self, port: int) -> int:
        """The loopback port on the host that forwards to ``port`` of this container."""
        bindings = self._attrs()["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - reading docker's answer
                return int(binding["HostPort"])
        raise NodeError(f"{self.hostname}: port {port} is not published")

    def running(self) -> bool:
        return str(self._attrs()["State"]["Status"]) == "running"

    def exec(self, command: list[str], user: str | None = None, stdin: str | None = None) -> ExecResult:
        """Run ``command`` (an argument list, no shell) in the container; ``stdin`` is fed via a shell pipe."""
        wrapped = self.container.get_wrapped_container()
        if stdin is not None:
            # docker exec has no stdin in the SDK's simple API: pass the text as an env var and pipe it.
            command = ["sh", "-c", 'printf %s "$TESTBED_STDIN" | "$@"', "sh", *command]
            result = wrapped.exec_run(command, user=user or "", demux=True, environment={"TESTBED_STDIN": stdin})
        else:
            result = wrapped.exec_run(command, user=user or "", demux=True)
        out, err = result.output
        return ExecResult(
            int(result.exit_code), (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")
        )

    def put_files(self, directory: str, files: Mapping[str, bytes], mode: int = 0o600) -> None:
        """Write ``files`` (name -> content, in this order) into the existing ``directory`` of the container."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        if not self.container.get_wrapped_container().put_archive(directory, buffer.getvalue()):
            raise NodeError(f"{self.hostname}: cannot write files into {directory}")

    def logs(self, tail: int = 40) -> str:
        """The container's last output lines (for error messages)."""
        try:
            data: bytes = self.container.get_wrapped_container().logs(tail=tail)
        except Exception as exc:
            return f"<no logs: {exc}>"
        return data.decode(errors="replace")

    def stop(self) -> None:
        """Remove the container (forcefully); safe to call twice."""
        if self._container is not None:
            try:
                self._container.stop()
            except Exception:
                log.warning("could not remove %s", self.container_name, exc_info=True)
            self._container = None
