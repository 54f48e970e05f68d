"""pytest fixtures for tests that need a simulated cluster (loaded as a plugin by ``tests/conftest.py``).

``sim_cluster`` is a small cluster with fast time (one minute of time limit lasts half a second);
``sim_ssh`` an SSH connection to its first command node as the runner's account. Each fault fixture
switches one fault on for the test: ``sim_controller_down``, ``sim_command_node_down``,
``sim_failing_sbatch``, ``sim_dropping_sbatch``, ``sim_slow_squeue``, ``sim_node_failure``, ``sim_silent_host``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import asyncssh
import pytest

from simulator.cluster import SimCluster
from simulator.config import ClusterConfig, TimingConfig
from simulator.faults import CommandFault

FAST_TIMING = TimingConfig(minute_seconds=0.5, kill_wait_seconds=0.5, min_job_age_seconds=300.0)


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
def sim_config() -> ClusterConfig:
    """2 command nodes, 4 compute nodes with 4 CPUs, 2 gateways, alice and bob, fast time."""
    return ClusterConfig.build(timing=FAST_TIMING)


@pytest.fixture
async def sim_cluster(sim_config: ClusterConfig) -> AsyncIterator[SimCluster]:
    async with SimCluster(sim_config) as cluster:
        yield cluster


@pytest.fixture
async def sim_ssh(sim_cluster: SimCluster) -> AsyncIterator[asyncssh.SSHClientConnection]:
    conn = await sim_cluster.connect(sim_cluster.command_nodes[0].node)
    try:
        yield conn
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.fixture
def sim_controller_down(sim_cluster: SimCluster) -> SimCluster:
    """slurmctld and slurmdbd unreachable: Slurm clients fail with their connect-failure texts."""
    sim_cluster.controller_up = False
    return sim_cluster


@pytest.fixture
async def sim_command_node_down(sim_cluster: SimCluster) -> SimCluster:
    """The first command node's sshd is down (connections refused)."""
    await sim_cluster.node_down(sim_cluster.command_nodes[0].node)
    return sim_cluster


@pytest.fixture
def sim_failing_sbatch(sim_cluster: SimCluster) -> CommandFault:
    """The next sbatch fails with Slurm's submission error text."""
    return sim_cluster.faults.fail_command("sbatch")


@pytest.fixture
def sim_dropping_sbatch(sim_cluster: SimCluster) -> CommandFault:
    """The next sbatch's connection is cut after the script was read, before it is submitted."""
    return sim_cluster.faults.drop_connection("sbatch")


@pytest.fixture
def sim_slow_squeue(sim_cluster: SimCluster) -> float:
    """Every squeue takes half a second longer; returns the delay."""
    sim_cluster.faults.slow_command("squeue", 0.5)
    return 0.5


@pytest.fixture
def sim_node_failure(sim_cluster: SimCluster) -> Callable[[str], None]:
    """Call with a compute node name to make it fail (its jobs end NODE_FAIL)."""
    return sim_cluster.fail_node


@pytest.fixture
def sim_silent_host(sim_cluster: SimCluster) -> Callable[[str], str]:
    """Call with a node name or IPv4 address to make it answer no connection (as behind a dropping firewall);
    returns its address."""

    def silence(host: str) -> str:
        try:
            address = sim_cluster.resolve(host)
        except KeyError:
            address = host
        sim_cluster.faults.silence_host(address)
        return address

    return silence
