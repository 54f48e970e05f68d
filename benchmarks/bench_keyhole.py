"""Keyhole benchmarks: gateway load spread, rule install time against rules present, listening-to-available time.

``python -m benchmarks.bench_keyhole`` (``--smoke`` for a seconds-long run) prints three figures, all measured
through the runner's own code (:class:`~runner.keyhole.service.KeyholeService`,
:class:`~runner.gateway.pool.GatewayPool`, :class:`~runner.keyhole.readiness.KeyholeWatcher`) with a real etcd:

1. spread: N jobs' requests over 8 and 32 gateways (in-memory gateways that accept every command):
   max/mean forwards per gateway (target <= 1.05);
2. install: seconds per one-job rule install on a simulated gateway holding 0, 1,000 and 10,000 rules
   (target: 10,000 <= 2x 0);
3. readiness: from the application listening to ``available`` in etcd (what the API shows), on the
   simulated cluster over SSH: median and p99 (target median <= 1 s);
4. node check: a keyhole request's time on the simulated cluster over SSH when the job watcher has already seen
   the job RUNNING (its squeue row names the nodes) and when the service must ask squeue for that one job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aetcd

from benchmarks.common import raised_file_limit
from runner.app import Runner
from runner.config import Settings, settings_from_mapping
from runner.gateway.iptables import ForwardRule
from runner.gateway.pool import Gateway, GatewayPool
from runner.keyhole import protocol
from runner.keyhole.claims import Claims
from runner.keyhole.ports import PortBook
from runner.keyhole.service import KeyholeService
from runner.records import JobRecord, JobState, submitted_as
from runner.ssh import CommandOutput
from runner.state import StateStore
from runner.watcher import observed
from simulator import ClusterConfig, SimCluster
from simulator.commands import CommandContext
from simulator.etcd import EtcdServer, free_port
from simulator.gateway import HANDLERS, GatewayService

TOKEN = "b" * 32


def seen_running(job_id: str, node: str, slurm_id: str) -> JobRecord:
    """A record as the job watcher leaves it once squeue showed the job RUNNING on ``node``."""
    row = {"slurm-job-id": slurm_id, "slurm-state": "RUNNING", "job-name": f"bwvisu-{job_id}", "user": "alice"}
    record = JobRecord(job_id=job_id, uid="alice", template_name="t", variables={})
    for change in (submitted_as(slurm_id), observed({**row, "nodes": "1", "node-list": node})):
        record = change(record) or record
    return record


class NoScheduler:
    """The keyhole's Scheduler when every record already shows its job RUNNING: asking Slurm is a bug here."""

    async def query(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]:
        raise AssertionError(f"asked Slurm about {slurm_ids}: the watcher's rows should have been used")


class AcceptingGateway:
    """A gateway that accepts every command: resolves any name, finds every port closed."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        out = ""
        if argv[:2] == ["getent", "ahostsv4"]:
            out = "".join(f"10.0.{i // 250}.{i % 250 + 1} STREAM {n}\n" for i, n in enumerate(argv[2:]))
        return CommandOutput(self.name, tuple(argv), 1 if argv[0] == "nc" else 0, out, "")

    async def close(self) -> None:
        return None


class InProcessGateway:
    """The simulator's gateway command handlers without SSH: measures the rule table, not the transport."""

    def __init__(self, address: str) -> None:
        self.name = address
        self.service = GatewayService([address])
        self.ctx = CommandContext(node=None, user="root", resolve=lambda n: n, services={"gateway": self.service})

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        words = argv[2:] if argv[:2] == ["sudo", "-n"] else argv
        result = await HANDLERS[words[0]](self.ctx, words, (stdin or "").encode())
        return CommandOutput(self.name, tuple(argv), result.exit_status, result.stdout, result.stderr)

    async def close(self) -> None:
        await self.service.close()


def _settings(etcd: EtcdServer, prefix: str, **extra: Any) -> Settings:
    return settings_from_mapping(
        {"etcd-servers": [{"ip": etcd.host, "port": etcd.port}], "etcd_prefix": prefix, **extra}
    )


async def spread(etcd: EtcdServer, jobs: int, gateways: int, in_flight: int = 64) -> tuple[float, int, float]:
    """Place ``jobs`` one-port requests; returns (max/mean, max, seconds)."""
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    settings = _settings(etcd, prefix, **{"keyholed-port-range": {"min": 20000, "max": 20000 + jobs * 2}})
    client = aetcd.Client(host=etcd.host, port=etcd.port)
    await client.connect()
    try:
        store = StateStore(client, prefix)
        pool = GatewayPool(
            [Gateway(AcceptingGateway(f"gw{i}"), f"10.9.0.{i}", f"192.0.2.{i}") for i in range(gateways)],
            down_retry_after=30,
        )
        service = KeyholeService(
            settings,
            store,
            Claims(client, prefix, nonce_ttl=600, takeover_after=60),
            PortBook(client, prefix, 20000, 20000 + jobs * 2),
            pool,
            scheduler=NoScheduler(),
        )
        limit = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with limit:
                job = seen_running(f"b-{i}", "vis01", str(1000 + i))
                await store.create_job(job, TOKEN)
                await service.handle(
                    protocol.build_request(
                        job_id=job.job_id, hostnames=["vis01"], ports=1, token=TOKEN, timestamp=int(time.time())
                    )
                )

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(jobs)))
        took = time.perf_counter() - start
        counts = Counter(r.gateway_ssh_ip for r in await service.ports.all())
        loads = [counts.get(g.internal_ip, 0) for g in pool.gateways]
        return max(loads) / statistics.mean(loads), max(loads), took
    finally:
        await client.close()


async def install_time(present: int, samples: int) -> float:
    """Seconds per one-job install through GatewayPool with ``present`` rules on the gateway."""
    gateway = Gateway(InProcessGateway("127.0.6.1"), "127.0.6.1", "127.0.6.1")
    pool = GatewayPool([gateway], down_retry_after=30)
    try:
        await pool.ensure_chains(gateway)
        if present:
            await pool.edit(
                gateway, add=[ForwardRule(f"p-{i}", 21000 + i, "127.0.6.2", 21000 + i) for i in range(present)]
            )
        start = time.perf_counter()
        for i in range(samples):
            port = 40000 + i
            await pool.install(gateway, [ForwardRule(f"n-{i}", port, "127.0.6.2", port)])
        return (time.perf_counter() - start) / samples
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def _sim_runner(prefix: str) -> AsyncIterator[tuple[SimCluster, Runner]]:
    """A runner on a simulated cluster with a real etcd, its job watcher quiet after its first tick (the
    records the benchmarks write have no Slurm job behind them, or one the watcher must not touch)."""
    with EtcdServer() as etcd:
        async with SimCluster(ClusterConfig.build()) as cluster:
            config = {
                **cluster.runner_config(),
                "etcd-servers": [{"ip": etcd.host, "port": etcd.port}],
                "etcd_prefix": prefix,
                "keyholed-servers": [{"ip": "127.0.0.1", "port": free_port()}],
                "ssh": {"client_keys": [str(cluster.client_key_path)], "known_hosts": str(cluster.known_hosts_path)},
                "watcher": {"interval": 3600, "leader_ttl": 2},
            }
            async with Runner(settings_from_mapping(config)) as started:
                for _ in range(2000):
                    if started.watch_loop.iterations >= 1:
                        break
                    await asyncio.sleep(0.01)
                yield cluster, started


async def readiness(jobs: int) -> list[float]:
    """Seconds from a listener opening to the job being ``available`` in etcd, on the simulated cluster."""
    delays: list[float] = []
    async with _sim_runner("/bench-ready") as (cluster, started):
        node = cluster.compute_nodes[0]
        for i in range(jobs):
            job = seen_running(f"r-{i}", node.name, str(5000 + i))
            await started.store.create_job(job, TOKEN)
            [forward] = await started.keyhole.service.handle(
                protocol.build_request(
                    job_id=job.job_id, hostnames=[node.name], ports=1, token=TOKEN, timestamp=int(time.time())
                )
            )
            await asyncio.sleep(0.25 + (i % 5) * 0.1)  # the application starts a while after its ports
            server = await asyncio.start_server(lambda _r, w: w.close(), node.address, forward.internal_port)
            opened = time.perf_counter()
            try:
                for _ in range(1000):
                    record = await started.store.get_job(job.job_id)
                    if record is not None and record.state is JobState.AVAILABLE:
                        break
                    await asyncio.sleep(0.01)
                delays.append(time.perf_counter() - opened)
            finally:
                server.close()
                await server.wait_closed()
    return delays


SLEEPER = "#!/bin/bash\n#SBATCH --time=600\n#SIM-BEHAVIOUR sleep\nsleep 600\n"


async def node_check_cost(samples: int) -> tuple[float, float]:
    """Median seconds per keyhole request on the simulated cluster over SSH, when the watcher has already
    seen the job RUNNING (its row gives the nodes) and when it has not (the service asks squeue for the job)."""
    seen: list[float] = []
    unseen: list[float] = []
    async with _sim_runner("/bench-check") as (cluster, started):
        home = started.settings.bwvisu_home_prefix
        for i in range(2 * samples):
            job_id = f"n-{i}"
            slurm_id = await started.scheduler.submit("alice", job_id, f"{home}/alice", SLEEPER)
            simulated = cluster.scheduler.jobs[int(slurm_id)]
            for _ in range(1000):
                if simulated.nodes:
                    break
                await asyncio.sleep(0.01)
            record = seen_running(job_id, simulated.nodes[0], slurm_id)
            if i % 2:  # as right after sbatch: the watcher has not seen it start
                record = JobRecord(job_id=job_id, uid="alice", template_name="t", variables={})
                record = submitted_as(slurm_id)(record) or record
            await started.store.create_job(record, TOKEN)
            body = protocol.build_request(
                job_id=job_id, hostnames=[simulated.nodes[0]], ports=1, token=TOKEN, timestamp=int(time.time())
            )
            start = time.perf_counter()
            await started.keyhole.service.handle(body)
            (unseen if i % 2 else seen).append(time.perf_counter() - start)
            await started.scheduler.cancel("alice", slurm_id)
    return statistics.median(seen), statistics.median(unseen)


async def main_async(
    jobs: int, install_sizes: list[int], samples: int, ready_jobs: int, check_samples: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with EtcdServer() as etcd:
        for gateways in (8, 32):
            ratio, top, took = await spread(etcd, jobs, gateways)
            results[f"spread-{gateways}"] = ratio
            print(f"spread: {jobs} jobs over {gateways} gateways: max/mean {ratio:.3f} (max {top}), {took:.1f}s")
    base = None
    for present in install_sizes:
        per = await install_time(present, samples)
        base = base or per
        results[f"install-{present}"] = per
        print(f"install: {present:>6} rules present: {per * 1e3:.2f} ms per job install ({per / base:.2f}x)")
    delays = sorted(await readiness(ready_jobs))
    median = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    results["ready-median"], results["ready-p99"] = median, p99
    print(f"readiness: listening -> available over {len(delays)} jobs: median {median:.3f}s, p99 {p99:.3f}s")
    seen, unseen = await node_check_cost(check_samples)
    results["request-seen"], results["request-unseen"] = seen, unseen
    print(
        f"node check: keyhole request {seen * 1e3:.1f} ms with the watcher's row, {unseen * 1e3:.1f} ms asking squeue"
        f" (+{(unseen - seen) * 1e3:.1f} ms), median of {check_samples} each"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes, seconds")
    args = parser.parse_args()
    with raised_file_limit():
        if args.smoke:
            asyncio.run(main_async(200, [0, 100], samples=20, ready_jobs=3, check_samples=3))
        else:
            asyncio.run(main_async(10_000, [0, 1_000, 10_000], samples=200, ready_jobs=40, check_samples=30))


if __name__ == "__main__":
    main()
