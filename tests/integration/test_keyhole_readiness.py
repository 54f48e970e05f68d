"""Readiness and health from the gateway: available as soon as the port answers; a silent port is shown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.keyhole.readiness import HEALTH_NOTE
from runner.records import JobRecord, JobState
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, seen_running, watcher_settled
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "r" * 32


async def test_available_when_the_port_answers_and_unhealthy_when_it_stops(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    node = sim_cluster.compute_nodes[2]
    async with Runner(make_settings(**QUIET_WATCHER)) as started:
        await watcher_settled(started)
        await started.store.create_job(seen_running("j-ready", node.name), TOKEN)
        data = protocol.build_request(
            job_id="j-ready", hostnames=[node.name], ports=1, token=TOKEN, timestamp=int(time.time())
        )
        [forward] = await started.keyhole.service.handle(data)

        async def state() -> JobRecord:
            job = await started.store.get_job("j-ready")
            assert job is not None
            return job

        assert (await state()).state is JobState.RUNNING  # nothing listens yet (probed through the gateway's nc)

        server = await asyncio.start_server(lambda _r, w: w.close(), node.address, forward.internal_port)
        try:

            async def available() -> bool:
                job = await state()
                return job.state is JobState.AVAILABLE and job.forwards[0].reachable

            await wait_until(available, 10, "job never became available")
        finally:
            server.close()
            await server.wait_closed()

        async def unhealthy() -> bool:
            job = await state()
            return not job.forwards[0].reachable and HEALTH_NOTE in job.details

        await wait_until(unhealthy, 15, "a silent port was never shown")
        assert (await state()).state is JobState.AVAILABLE
