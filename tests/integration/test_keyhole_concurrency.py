"""Two runner processes on one etcd answer 500 concurrent keyhole requests: no port and no rule given twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.keyhole.client import parse_answer
from simulator import SimCluster
from tests.integration.keyhole_support import QUIET_WATCHER, all_rules, gateway_rules, seen_running, watcher_settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

JOBS = 500
IN_FLIGHT = 64
TOKEN = "c" * 32


async def test_two_runners_never_give_a_port_or_rule_twice(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    hosts = [c.name for c in sim_cluster.compute_nodes]
    # the job watcher would end these Slurm-less jobs
    async with Runner(make_settings(**QUIET_WATCHER)) as one, Runner(make_settings(**QUIET_WATCHER)) as two:
        await watcher_settled(one, two)
        for i in range(JOBS):
            await one.store.create_job(seen_running(f"c-{i}", hosts[i % len(hosts)], slurm_id=str(1000 + i)), TOKEN)
        urls = [r.keyhole.server.url for r in (one, two) if r.keyhole.server is not None]
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def ask(client: httpx.AsyncClient, i: int) -> tuple[int, bytes]:
            data = protocol.build_request(
                job_id=f"c-{i}", hostnames=[hosts[i % len(hosts)]], ports=1, token=TOKEN, timestamp=int(time.time())
            )
            async with limit:
                for _ in range(50):  # 503 "in progress" or a busy moment: retry as the client does
                    response = await client.post(urls[i % 2] + protocol.REQUEST_PATH, content=data)
                    if response.status_code < 500:
                        return response.status_code, response.content
                    await asyncio.sleep(0.05)
                return response.status_code, response.content

        # fewer connections than the per-node share (CONNECTIONS_PER_NODE): every job here comes from one address
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(timeout=60, trust_env=False, limits=limits) as client:
            answers = await asyncio.gather(*(ask(client, i) for i in range(JOBS)))
        assert [status for status, _ in answers] == [200] * JOBS, [a for a in answers if a[0] != 200][:3]
        ports = []
        for _, content in answers:
            ports += [external for _, external, _ in parse_answer(content, 1)]
        assert len(set(ports)) == JOBS
        rules = await all_rules(sim_cluster)
        flat = [r for rs in rules.values() for r in rs]
        assert len(flat) == JOBS
        assert Counter(r.job_id for r in flat) == Counter(f"c-{i}" for i in range(JOBS))
        assert sorted(r.external_port for r in flat) == sorted(ports)
        for gateway in sim_cluster.gateway_nodes:
            _, masquerade = await gateway_rules(sim_cluster, gateway.node)
            assert len(masquerade) == len(rules[gateway.node])
        reserved = await one.keyhole.ports.all()
        assert sorted(r.port for r in reserved) == sorted(ports)
        loads = [len(rs) for rs in rules.values()]
        assert max(loads) - min(loads) <= JOBS // 5  # both processes spread their forwards
