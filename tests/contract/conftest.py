"""The contract tier: every test runs once against the simulator and once against the containerised cluster.

``backend`` is parametrised over both; the testbed side carries the ``e2e`` marker and takes the session's
one ``testbed`` (so Docker's absence skips it on a developer's machine and fails it in CI, as for e2e).
Both sides are module-scoped: tests are grouped per backend and each cluster is connected to once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.cluster import SimCluster
from simulator.config import ClusterConfig, TimingConfig
from tests.contract.backends import Backend, SimBackend, TestbedBackend

# Real time for time limits (the testbed cannot speed up), a short KillWait so cancellations end quickly.
SIM_TIMING = TimingConfig(kill_wait_seconds=0.5)


@pytest.fixture(
    scope="module",
    params=["sim", pytest.param("testbed", marks=pytest.mark.e2e)],
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "sim":
        async with SimCluster(ClusterConfig.build(compute=2, gateways=1, command=1, timing=SIM_TIMING)) as cluster:
            sim = SimBackend.connect(cluster)
            try:
                yield sim
            finally:
                await sim.close()
    else:
        bed = TestbedBackend.connect(request.getfixturevalue("testbed"))
        try:
            yield bed
        finally:
            await bed.close()
