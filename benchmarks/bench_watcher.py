"""Job watcher cost per tick at 100, 1,000 and 10,000 active jobs, and the runner's memory at 0 and 10,000 jobs.

``python -m benchmarks.bench_watcher`` (``--smoke`` for a seconds-long run). The runner runs alone in a child
process (:mod:`benchmarks.runner_process`) so that its CPU time and RSS exclude the simulated cluster and the
benchmark; the cluster and etcd stay in this process. Jobs are queued straight into the simulator's scheduler
(process-free sleep jobs, all running) and their records written straight into etcd, growing one population.

Per size: one *transition* tick (every new job moves from submitted to running: one etcd write each) and then
*steady* ticks (nothing changed: the recurring cost), each with Slurm commands sent (runner side:
``CommandNodes.calls``; cluster side: ``squeue`` in the simulator's command log), ``squeue`` bytes parsed and
CPU time. Targets: 1 Slurm call per tick; CPU per job not growing with the number of jobs (at most 1.5x the
per-job cost at the smallest size, to allow for noise); no full read of the records from etcd in a steady tick
(the watcher's view is kept by an etcd watch); a transition tick of 10,000 jobs at most 0.5 s CPU. Memory: the
child's RSS after start-up and after ticking over 10,000 jobs (each after a garbage collection).

The keyhole watcher's loop is stopped in the child (its sweeps, every 0.2 s, would land inside measured ticks);
one sweep per size is measured on its own and reported without a target.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from typing import Any

import aetcd

from benchmarks.common import SLEEP_TEMPLATE, BenchResult, Figure, bench_runner_config, ms, run_cli, store_jobs
from benchmarks.runner_process import RunnerProcess
from runner.state import StateStore
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer
from simulator.jobs import JobSpec

LINEAR_SLACK = 1.5
SCRIPT = f"#!/bin/bash\n# {SLEEP_TEMPLATE}\n#SIM-BEHAVIOUR sleep\n"


@dataclass(frozen=True)
class Sizes:
    jobs: tuple[int, ...]
    steady_ticks: int


FULL = Sizes(jobs=(100, 1_000, 10_000), steady_ticks=3)
SMOKE = Sizes(jobs=(100, 1_000), steady_ticks=1)


def _queue(cluster: SimCluster, count: int) -> list[str]:
    """``count`` sleep jobs straight into the scheduler, as sbatch would queue them; their Slurm ids."""
    spec = {"script": SCRIPT, "user": "alice", "uid": 1001, "gid": 1001, "work_dir": str(cluster.home_prefix)}
    return [str(cluster.scheduler.submit(JobSpec(**spec)).job_id) for _ in range(count)]  # type: ignore[arg-type]


async def _tick(proc: RunnerProcess, cluster: SimCluster) -> dict[str, Any]:
    before = len(cluster.command_log.named("squeue"))
    answer = await proc.ask({"op": "tick"})
    answer["cluster_squeue"] = len(cluster.command_log.named("squeue")) - before
    return answer


async def bench(sizes: Sizes) -> BenchResult:
    result = BenchResult()
    config = ClusterConfig.build(command=1, compute=100, cpus=max(sizes.jobs) // 100 + 1, gateways=1)
    with EtcdServer() as etcd:
        async with SimCluster(config) as cluster:
            runner_config = bench_runner_config(cluster, etcd, watcher={"interval": 3600, "leader_ttl": 10})
            client = aetcd.Client(host=etcd.host, port=etcd.port)
            await client.connect()
            try:
                store = StateStore(client, runner_config["etcd_prefix"])
                async with RunnerProcess(runner_config) as proc:
                    rss_start = proc.started["rss_mb"]
                    stored = 0
                    for count in sizes.jobs:
                        slurm_ids = _queue(cluster, count - stored)
                        await store_jobs(store, [f"w{i:06d}" for i in range(stored, count)], slurm_ids)
                        stored = count
                        await asyncio.sleep(0.2)  # let the scheduler start them
                        transition = await _tick(proc, cluster)
                        steady = [await _tick(proc, cluster) for _ in range(sizes.steady_ticks)]
                        await proc.ask({"op": "sweep"})  # the first may be a reconciling sweep (a fresh read)
                        sweep = await proc.ask({"op": "sweep"})  # a steady one
                        row = _row(count, transition, steady)
                        row["keyhole_sweep_cpu_ms"] = ms(sweep["cpu_s"])
                        result.series[str(count)] = row
                        print(
                            f"watcher: {count:>6} jobs: {row['calls']} Slurm call(s)/tick, squeue"
                            f" {row['squeue_bytes']} bytes, steady CPU {row['steady_cpu_ms']} ms"
                            f" ({row['cpu_us_per_job']} us/job), transition tick CPU {row['transition_cpu_ms']} ms;"
                            f" keyhole sweep CPU {row['keyhole_sweep_cpu_ms']} ms",
                            flush=True,
                        )
                    rss_full = (await proc.ask({"op": "rss"}))["rss_mb"]
            finally:
                await client.close()
    _figures(result, sizes, rss_start, rss_full)
    return result


def _row(count: int, transition: dict[str, Any], steady: list[dict[str, Any]]) -> dict[str, Any]:
    ticks = [transition, *steady]
    cpu = statistics.median(t["cpu_s"] for t in steady)
    return {
        "calls": max(t["calls"] for t in ticks),
        "cluster_squeue": max(t["cluster_squeue"] for t in ticks),
        "squeue_bytes": steady[-1]["squeue_bytes"],
        "active": steady[-1]["stats"]["active"],
        "transition_updated": transition["stats"]["updated"],
        "transition_cpu_ms": ms(transition["cpu_s"]),
        "steady_cpu_ms": ms(cpu),
        "steady_wall_ms": ms(statistics.median(t["wall_s"] for t in steady)),
        "cpu_us_per_job": round(cpu / count * 1e6, 1),
        "steady_full_reads": sum(t["etcd_full_reads"] for t in steady),
    }


def _figures(result: BenchResult, sizes: Sizes, rss_start: float, rss_full: float) -> None:
    base = result.series[str(sizes.jobs[0])]["cpu_us_per_job"]
    sweep_base = result.series[str(sizes.jobs[0])]["keyhole_sweep_cpu_ms"] / sizes.jobs[0]
    for count in sizes.jobs:
        row = result.series[str(count)]
        params = {"jobs": count}
        calls = max(row["calls"], row["cluster_squeue"])
        growth = round(row["cpu_us_per_job"] / base, 2) if base else float("nan")
        sweep_growth = round(row["keyhole_sweep_cpu_ms"] / count / sweep_base, 2) if sweep_base else float("nan")
        result.add(
            Figure("watcher.slurm_calls_per_tick", calls, "calls", params, "1", calls == 1),
            Figure("watcher.squeue_bytes_per_tick", row["squeue_bytes"], "bytes", params),
            Figure("watcher.cpu_ms_per_tick", row["steady_cpu_ms"], "ms", params),
            Figure(
                "watcher.transition_cpu_ms",
                row["transition_cpu_ms"],
                "ms",
                params,
                *(("<= 500", row["transition_cpu_ms"] <= 500) if count >= 10_000 else ()),
            ),
            Figure(
                "watcher.keyhole_sweep_cpu_ms",
                row["keyhole_sweep_cpu_ms"],
                "ms",
                params,
                note="one steady keyhole-watcher sweep (every 0.2 s); active jobs from the shared watched view",
            ),
            Figure(
                "watcher.keyhole_sweep_cpu_per_job_vs_smallest",
                sweep_growth,
                "x",
                params,
                "<= 1.5 (no growth per job)",
                sweep_growth <= 1.5,
            ),
            Figure(
                "watcher.steady_etcd_full_reads",
                row["steady_full_reads"],
                "reads",
                params,
                "0 (kept by a watch)",
                row["steady_full_reads"] == 0,
            ),
            Figure(
                "watcher.cpu_per_job_vs_smallest",
                growth,
                "x",
                params,
                f"<= {LINEAR_SLACK} (linear)",
                growth <= LINEAR_SLACK,
            ),
        )
    result.series["memory"] = {"0": rss_start, str(sizes.jobs[-1]): rss_full}
    result.add(
        Figure("memory.runner_rss_mb", rss_start, "MiB", {"jobs": 0}, note="runner alone in a child process"),
        Figure("memory.runner_rss_mb", rss_full, "MiB", {"jobs": sizes.jobs[-1]}, note="after ticking over all"),
    )


def main(argv: list[str] | None = None) -> BenchResult:
    smoke_help = "100 and 1,000 jobs"
    return run_cli("python -m benchmarks.bench_watcher", __doc__, bench, (FULL, SMOKE), smoke_help, argv)


if __name__ == "__main__":
    main()
