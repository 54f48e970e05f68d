"""The embedded default: a simulated cluster and a local etcd, with a runner configured for them.

Only ``python -m runner dev`` imports this module (lazily, in its subcommand): it is the one runner module that
imports the simulator, and nothing on the production path (``serve``, the API, the loops) reaches it. The
frontend credentials come from the same variables as ``serve``'s (``RUNNER_API__USER``,
``RUNNER_API__PASSWORD``, applied by the settings model on top of this mapping); without them the user is
``bwvisu-web`` and the password is generated.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from runner.config import Settings, log_environment_warnings, settings_from_mapping
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer, free_port


@dataclass
class DevEnvironment:
    cluster: SimCluster
    etcd: EtcdServer
    settings: Settings


def dev_config(cluster: SimCluster, etcd: EtcdServer, *, api_port: int, keyhole_port: int) -> dict[str, Any]:
    """A runner config for ``cluster``: bwVisu's fields plus the runner's own sections."""
    return {
        **cluster.runner_config(),
        "etcd-servers": [{"ip": etcd.host, "port": etcd.port}],
        "keyholed-servers": [{"ip": "127.0.0.1", "port": keyhole_port}],
        "api": {"host": "127.0.0.1", "port": api_port, "user": "bwvisu-web", "password": secrets.token_urlsafe(12)},
        "ssh": {"client_keys": [str(cluster.client_key_path)], "known_hosts": str(cluster.known_hosts_path)},
        "watcher": {"interval": 1.0},
    }


@asynccontextmanager
async def dev_environment(api_port: int = 4242, config: ClusterConfig | None = None) -> AsyncIterator[DevEnvironment]:
    """Start etcd and a simulated cluster; yield settings for a runner on them; stop both afterwards."""
    with EtcdServer() as etcd:
        async with SimCluster(config or ClusterConfig.default()) as cluster:
            log_environment_warnings()
            data = dev_config(cluster, etcd, api_port=api_port, keyhole_port=free_port())
            yield DevEnvironment(cluster, etcd, settings_from_mapping(data))
