"""The contract tier: every test runs once against the simulator and once against the containerised cluster.

``backend`` is parametrised over both, set up as a site following ``bwvisu_site`` (the runner's account may sudo
only the helpers; what ``Testbed.runner_config`` uses); ``compat_backend`` over both with bwVisu's plain sudo rules
(the runner's default). The testbed side carries the ``e2e`` marker and takes the session's one ``testbed`` (so
Docker's absence skips it on a developer's machine and fails it in CI, as for e2e). Both are module-scoped: tests
are grouped per backend and each cluster is connected to once. The simulated site cluster has the testbed's uids,
so texts naming them match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.cluster import SimCluster
from simulator.config import ClusterConfig, SiteConfig, TimingConfig, UserConfig
from tests.contract.backends import Backend, SimBackend, TestbedBackend

# Real time for time limits (the testbed cannot speed up), a short KillWait so cancellations end quickly.
SIM_TIMING = TimingConfig(kill_wait_seconds=0.5)
TESTBED_USERS = [UserConfig(name="alice", uid=2001), UserConfig(name="bob", uid=2002)]


async def _backend(request: pytest.FixtureRequest, site: bool) -> AsyncIterator[Backend]:
    if request.param == "sim":
        config = ClusterConfig.build(
            compute=2, gateways=1, command=1, timing=SIM_TIMING, users=TESTBED_USERS, service_uid=2100,
            site=SiteConfig() if site else None,
        )  # fmt: skip
        async with SimCluster(config) as cluster:
            sim = SimBackend.connect(cluster)
            try:
                yield sim
            finally:
                await sim.close()
    else:
        bed = TestbedBackend.connect(request.getfixturevalue("testbed"), site=site)
        try:
            yield bed
        finally:
            await bed.close()


@pytest.fixture(scope="module", params=["sim", pytest.param("testbed", marks=pytest.mark.e2e)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The cluster as a site sets it up with ``bwvisu_site``."""
    async for made in _backend(request, site=True):
        yield made


@pytest.fixture(scope="module", params=["sim", pytest.param("testbed", marks=pytest.mark.e2e)])
async def compat_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The cluster with bwVisu's plain sudo rules."""
    async for made in _backend(request, site=False):
        yield made
