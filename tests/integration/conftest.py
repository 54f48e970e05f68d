"""Runner fixtures on the simulated cluster with a real etcd: settings, a started runner, an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings, settings_from_mapping
from simulator import SimCluster
from simulator.etcd import EtcdServer, free_port

TEMPLATES = Path(__file__).parent / "templates"
API_AUTH = ("bwvisu-web", "test-password")


def runner_config(cluster: SimCluster, etcd: EtcdServer, prefix: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        **cluster.runner_config(),
        "etcd-servers": [{"ip": etcd.host, "port": etcd.port}],
        "etcd_prefix": prefix,
        "templates_dir": str(TEMPLATES),
        "keyholed-servers": [{"ip": "127.0.0.1", "port": free_port()}],
        "api": {"user": API_AUTH[0], "password": API_AUTH[1]},
        "ssh": {
            "client_keys": [str(cluster.client_key_path)],
            "known_hosts": str(cluster.known_hosts_path),
            "command_timeout": 5,
            "connect_timeout": 5,
            "down_retry_after": 60,
        },
        "watcher": {"interval": 0.1, "leader_ttl": 2},
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_settings(sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return settings_from_mapping(runner_config(sim_cluster, etcd_server, etcd_prefix, **overrides))

    return make


@pytest.fixture
async def runner(make_settings: Callable[..., Settings]) -> AsyncIterator[Runner]:
    async with Runner(make_settings()) as started:
        yield started


def api_client(runner: Runner) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=runner.app), base_url="http://runner", auth=API_AUTH, timeout=30
    )


@pytest.fixture
async def api(runner: Runner) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runner) as client:
        yield client
