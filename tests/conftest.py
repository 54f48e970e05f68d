"""Fixtures shared by every tier: a real etcd server and an isolated key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import aetcd
import pytest

from simulator.etcd import EtcdServer

pytest_plugins = ["simulator.testing", "tests.e2e.testbed_fixtures"]


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd process for the whole session; tests isolate themselves with :func:`etcd_prefix`."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses."""
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def etcd_client(etcd_server: EtcdServer) -> AsyncIterator[aetcd.Client]:
    client = aetcd.Client(host=etcd_server.host, port=etcd_server.port)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()
