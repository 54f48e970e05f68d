"""``/health``, ``/ready`` and ``/metrics`` over TCP: a runner on the simulated cluster with a real etcd.

One real job's life (submit, available, cancel, finished) is read back from ``/metrics`` with
prometheus-client's own parser; readiness is taken away by stopping every gateway and by stopping etcd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.app import Runner
from runner.config import ApiSettings, Settings
from runner.errors import GatewayUnavailable
from runner.web.server import ApiServer
from simulator import SimCluster
from simulator.etcd import EtcdServer
from tests.integration.conftest import API_AUTH
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, all_rules, submit, wait_available
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@asynccontextmanager
async def served(started: Runner) -> AsyncIterator[httpx.AsyncClient]:
    """The runner's API on 127.0.0.1 port 0; a client without credentials (requests add them)."""
    async with (
        ApiServer(started.app, ApiSettings(host="127.0.0.1", port=0)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client,
    ):
        yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    """``/metrics`` parsed by prometheus-client: (sample name, sorted labels) -> value."""
    response = await client.get("/metrics", auth=API_AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        assert family.documentation, f"{family.name} has no HELP text"
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def with_name(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


async def test_one_jobs_life_is_counted_in_metrics(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster
) -> None:
    async with Runner(make_settings(templates_dir=str(EXAMPLES))) as started, served(started) as client:
        before = await scrape(client)
        assert value(before, "bwvisu_runner_submissions_total", outcome="ok") == 0
        api = httpx.AsyncClient(base_url=str(client.base_url), auth=API_AUTH, timeout=30, trust_env=False)
        async with api:
            job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)
            body = await wait_available(api, job_id, 40)
            [service] = body["services"]
            gateway = next(g.internal_ip for g in sim_cluster.gateway_nodes if g.external_ip == service["external-ip"])
            live = await scrape(client)
            assert (await api.delete(f"/jobs/{job_id}")).status_code == 200

            async def cleaned() -> bool:
                job = (await api.get(f"/jobs/{job_id}")).json()
                rules = await all_rules(sim_cluster)
                return job["state"] == "finished" and not any(rules.values())

            await wait_until(cleaned, 30, "the cancelled job was not cleaned up")
            root = {"uid": "root", "template-name": "template_webapp.txt", "variables": WEBAPP_VARIABLES}
            refused = await api.post("/jobs", json=root)  # a system account: refused by the job service
            assert refused.json()["error"] == "refused-user", refused.text
            unknown = {"uid": "alice", "template-name": "template_none.txt", "variables": WEBAPP_VARIABLES}
            refused = await api.post("/jobs", json=unknown)  # refused before any I/O, and counted all the same
            assert refused.json()["error"] == "unknown-template", refused.text

            async def forwards_released() -> bool:
                return value(await scrape(client), "bwvisu_runner_gateway_forwards", gateway=gateway) == 0

            await wait_until(forwards_released, 10, "the gateway still counts the job's forward")
        after = await scrape(client)

    # while available: one job, available, one forward on the chosen gateway, all gateways healthy
    assert value(live, "bwvisu_runner_jobs", state="available") == 1
    assert sum(with_name(live, "bwvisu_runner_jobs").values()) == 1
    assert value(live, "bwvisu_runner_gateway_forwards", gateway=gateway) == 1
    assert sum(with_name(live, "bwvisu_runner_gateway_forwards").values()) == 1
    assert set(with_name(live, "bwvisu_runner_gateway_up").values()) == {1.0}
    assert value(live, "bwvisu_runner_keyhole_requests_total", outcome="ok") == 1
    # finished: no job left in any active state, one submission accepted and two refused, none failed
    assert set(with_name(after, "bwvisu_runner_jobs").values()) == {0.0}
    assert value(after, "bwvisu_runner_submissions_total", outcome="ok") == 1
    assert value(after, "bwvisu_runner_submissions_total", outcome="refused") == 2
    assert value(after, "bwvisu_runner_submissions_total", outcome="failed") == 0
    assert value(after, "bwvisu_runner_submit_seconds_count") == 1
    assert value(after, "bwvisu_runner_submit_seconds_sum") > 0
    assert value(after, "bwvisu_runner_keyhole_requests_total", outcome="ok") == 1
    assert value(after, "bwvisu_runner_keyhole_requests_total", outcome="refused") == 0
    slurm_calls = {
        dict(labels)["command"]: v for labels, v in with_name(after, "bwvisu_runner_slurm_calls_total").items()
    }
    assert slurm_calls["sbatch"] == 1
    assert slurm_calls["scancel"] == 1
    assert slurm_calls["squeue"] >= 2  # the watcher saw it running and then gone
    assert slurm_calls["sacct"] >= 1  # its end state
    assert slurm_calls["getent"] >= 1  # alice checked before the submission
    ticks = with_name(after, "bwvisu_runner_loop_step_seconds_count")
    assert ticks[(("loop", "job-watcher"),)] >= 2
    assert ticks[(("loop", "keyhole-watcher"),)] >= 1
    assert set(with_name(after, "bwvisu_runner_loop_errors_total").values()) == {0.0}
    first_node = started.nodes.runners[0].name  # the first command node answers everything: no failover
    opened = {
        dict(labels)["node"]: v for labels, v in with_name(after, "bwvisu_runner_ssh_connections_opened_total").items()
    }
    assert opened[first_node] == 1  # one connection, kept open and reused for every command
    assert value(after, "bwvisu_runner_ssh_connected", node=first_node) == 1
    assert sum(opened[g.runner.name] for g in started.keyhole.pool.gateways) >= 1  # the forward's gateway
    # bounded labels: neither the job id nor the user appear anywhere in the exposition
    names = {label for key in after for pair in key[1] for label in pair}
    assert job_id not in names
    assert "alice" not in " ".join(names)


async def test_health_answers_without_credentials_and_metrics_refuses_them(runner: Runner) -> None:
    async with served(runner) as client:
        health = await client.get("/health")
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", auth=(API_AUTH[0], "not-the-password"))
        ready = await client.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert "bwvisu_runner" not in anonymous.text + wrong.text
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def assert_names_only(body: dict[str, Any]) -> None:
    """A 503 body names components and nothing else: no addresses, no error texts."""
    assert set(body) == {"status", "missing"}
    assert set(body["missing"]) <= {"etcd", "leader", "command-nodes", "gateways"}


async def test_ready_names_gateways_when_every_gateway_is_down(runner: Runner, sim_cluster: SimCluster) -> None:
    async with served(runner) as client:

        async def leads() -> bool:
            return (await client.get("/ready")).status_code == 200

        await wait_until(leads, 20, "the runner never became ready")
        pool = runner.keyhole.pool
        for sim_gateway in sim_cluster.gateway_nodes:
            await sim_cluster.node_down(sim_gateway.node)
        for gateway in pool.gateways:
            with pytest.raises(GatewayUnavailable):
                await pool.run(gateway, ["true"])  # what any gateway command meets: the gateway is marked down
        response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert_names_only(body)
    assert body["missing"] == ["gateways"]


async def test_ready_names_etcd_when_etcd_is_unreachable(make_settings: Callable[..., Settings]) -> None:
    own = EtcdServer().start()
    try:
        settings = make_settings(**{"etcd-servers": [{"ip": own.host, "port": own.port}]})
        async with Runner(settings) as started, served(started) as client:

            async def leads() -> bool:
                return (await client.get("/ready")).status_code == 200

            await wait_until(leads, 20, "the runner never became ready")
            own.stop()
            response = await client.get("/ready")
            health = await client.get("/health")
    finally:
        own.stop()
    assert response.status_code == 503
    body = response.json()
    assert_names_only(body)
    assert "etcd" in body["missing"]
    assert "gateways" not in body["missing"]
    assert health.status_code == 200  # liveness does not depend on etcd


async def test_two_runners_in_one_process_keep_separate_counts(make_settings: Callable[..., Settings]) -> None:
    async with (
        Runner(make_settings()) as first,
        Runner(make_settings()) as second,
        served(first) as one,
        served(second) as other,
    ):
        api = httpx.AsyncClient(base_url=str(one.base_url), auth=API_AUTH, timeout=30, trust_env=False)
        async with api:
            await submit(api, "sleep.txt", {"minutes": "1", "seconds": "1"})
        counted, untouched = await scrape(one), await scrape(other)
    assert value(counted, "bwvisu_runner_submissions_total", outcome="ok") == 1
    assert value(untouched, "bwvisu_runner_submissions_total", outcome="ok") == 0
    assert value(untouched, "bwvisu_runner_submit_seconds_count") == 0
    assert with_name(untouched, "bwvisu_runner_slurm_calls_total").get((("command", "sbatch"),), 0) == 0
