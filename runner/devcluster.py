"""The embedded default: a simulated cluster and a local etcd, with a runner configured for them.

Used by ``python -m runner dev`` and by benchmarks; nothing here is used in production.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from runner.config import Settings, settings_from_mapping
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer, free_port


@dataclass
class DevEnvironment:
    cluster: SimCluster
    etcd: EtcdServer
    settings: Settings


def dev_config(cluster: SimCluster, etcd: EtcdServer, *, api_port: int, keyhole_port: int) -> dict[str, Any]:
    """A runner config for ``cluster``: bwVisu's fields plus the runner's own sections."""
    user = os.environ.get("RUNNER_API_USER", "bwvisu-web")
    password = os.environ.get("RUNNER_API_PASSWORD") or secrets.token_urlsafe(12)
    return {
        **cluster.runner_config(),
        "etcd-servers": [{"ip": etcd.host, "port": etcd.port}],
        "keyholed-servers": [{"ip": "127.0.0.1", "port": keyhole_port}],
        "api": {"host": "127.0.0.1", "port": api_port, "user": user, "password": password},
        "ssh": {"client_keys": [str(cluster.client_key_path)], "known_hosts": str(cluster.known_hosts_path)},
        "watcher": {"interval": 1.0},
    }


@asynccontextmanager
async def dev_environment(api_port: int = 4242, config: ClusterConfig | None = None) -> AsyncIterator[DevEnvironment]:
    """Start etcd and a simulated cluster; yield settings for a runner on them; stop both afterwards."""
    with EtcdServer() as etcd:
        async with SimCluster(config or ClusterConfig.default()) as cluster:
            data = dev_config(cluster, etcd, api_port=api_port, keyhole_port=free_port())
            yield DevEnvironment(cluster, etcd, settings_from_mapping(data))
