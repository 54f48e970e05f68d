"""Status path: ``GET /jobs/<id>`` and ``GET /jobs`` latency with 100, 1,000 and 10,000 jobs stored.

``python -m benchmarks.bench_status`` (``--smoke`` for a seconds-long run). Records are written straight into
etcd (:meth:`~runner.state.StateStore.create_job`), growing one population through the sizes; a runner serves
them through a real uvicorn server on 127.0.0.1 port 0 and one sequential ``httpx`` client measures p50/p99.
Both answers come from etcd: the benchmark also reports how many Slurm commands the runner sent meanwhile
(target 0). The job watcher is idle (long interval) so that it does not rewrite the records under the reads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from benchmarks.common import (
    BenchResult,
    Figure,
    bench_runner_config,
    first_tick_done,
    http_api,
    ms,
    percentile,
    run_cli,
    store_jobs,
)
from runner.app import Runner
from runner.config import settings_from_mapping
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer


@dataclass(frozen=True)
class Sizes:
    populations: tuple[int, ...]
    get_samples: int
    list_samples: int
    max_seconds: float  # per population and path


FULL = Sizes(populations=(100, 1_000, 10_000), get_samples=500, list_samples=40, max_seconds=20.0)
SMOKE = Sizes(populations=(100, 1_000), get_samples=50, list_samples=5, max_seconds=5.0)


async def _timed(samples: int, max_seconds: float, request: Callable[[int], Awaitable[None]]) -> list[float]:
    """Sequential requests, at most ``samples`` and ``max_seconds``; their latencies."""
    times: list[float] = []
    deadline = time.monotonic() + max_seconds
    for index in range(samples):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        await request(index)
        times.append(time.perf_counter() - started)
    return times


async def bench(sizes: Sizes) -> BenchResult:
    result = BenchResult()
    rng = random.Random(6)
    with EtcdServer() as etcd:
        async with SimCluster(ClusterConfig.build(command=1, compute=1, gateways=1)) as cluster:
            config = bench_runner_config(cluster, etcd, watcher={"interval": 3600, "leader_ttl": 10})
            async with Runner(settings_from_mapping(config)) as runner, http_api(runner, 1) as client:
                await first_tick_done(runner)
                ids: list[str] = []
                calls_before = runner.nodes.calls
                for population in sizes.populations:
                    fresh = [f"bench{i:06d}" for i in range(len(ids), population)]
                    started = time.perf_counter()
                    await store_jobs(runner.store, fresh)
                    load_seconds = time.perf_counter() - started
                    ids.extend(fresh)

                    async def get_one(_index: int) -> None:
                        response = await client.get(f"/jobs/{rng.choice(ids)}")
                        if response.status_code != 200:
                            raise RuntimeError(f"GET /jobs/<id>: {response.status_code}")

                    async def get_list(_index: int) -> None:
                        response = await client.get("/jobs")
                        if response.status_code != 200 or len(response.json()["jobs"]) != len(ids):
                            raise RuntimeError(f"GET /jobs: {response.status_code}, wrong length")

                    one = await _timed(sizes.get_samples, sizes.max_seconds, get_one)
                    listing = await _timed(sizes.list_samples, sizes.max_seconds, get_list)
                    row = {
                        "load_seconds": round(load_seconds, 2),
                        "get_p50_ms": ms(percentile(one, 0.5)),
                        "get_p99_ms": ms(percentile(one, 0.99)),
                        "get_samples": len(one),
                        "list_p50_ms": ms(percentile(listing, 0.5)),
                        "list_p99_ms": ms(percentile(listing, 0.99)),
                        "list_samples": len(listing),
                    }
                    result.series[str(population)] = row
                    params = {"jobs": population}
                    result.add(
                        Figure("status.get_job.p50_ms", row["get_p50_ms"], "ms", params),
                        Figure("status.get_job.p99_ms", row["get_p99_ms"], "ms", params),
                        Figure("status.list_jobs.p50_ms", row["list_p50_ms"], "ms", params),
                        Figure("status.list_jobs.p99_ms", row["list_p99_ms"], "ms", params),
                    )
                    print(
                        f"status: {population:>6} jobs stored ({load_seconds:.1f}s to write): GET /jobs/<id> p50"
                        f" {row['get_p50_ms']} ms p99 {row['get_p99_ms']} ms; GET /jobs p50 {row['list_p50_ms']} ms"
                        f" p99 {row['list_p99_ms']} ms",
                        flush=True,
                    )
                calls = runner.nodes.calls - calls_before
                result.add(Figure("status.slurm_calls", calls, "commands", {}, "0", calls == 0))
    return result


def main(argv: list[str] | None = None) -> BenchResult:
    return run_cli(
        "python -m benchmarks.bench_status", __doc__, bench, (FULL, SMOKE), "100 and 1,000 jobs, few samples", argv
    )


if __name__ == "__main__":
    main()
