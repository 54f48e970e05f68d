"""Load the simulator with thousands of behaviour jobs and many gateways; report squeue latency and memory.

``python -m benchmarks.bench_simulator`` (full: 10,000 jobs, 20 gateways) or ``--smoke`` (small).
Jobs are queued straight into the scheduler (the load), then a sample goes through ``sbatch`` over SSH;
``squeue`` of the whole queue is timed over SSH, as the runner's job watcher calls it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass

import psutil

from simulator import ClusterConfig, SimCluster
from simulator.jobs import JobSpec

MAX_SECONDS = 600.0


@dataclass
class Result:
    jobs: int
    running: int
    pending: int
    gateways: int
    load_seconds: float
    sbatch_ssh_p50_ms: float
    squeue_lines: int
    squeue_p50_ms: float
    squeue_p99_ms: float
    rss_mb: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(jobs: int, gateways: int, compute: int, cpus: int, squeue_calls: int, listeners: int) -> Result:
    deadline = time.monotonic() + MAX_SECONDS
    config = ClusterConfig.build(command=1, compute=compute, gateways=gateways, cpus=cpus)
    async with SimCluster(config) as cluster:
        started = time.perf_counter()
        sched = cluster.scheduler
        sample = min(100, jobs // 10)
        for index in range(jobs - sample):
            if index < listeners:
                script = f"#!/bin/bash\n#SIM-BEHAVIOUR listen port={30000 + index}\n"
            else:
                script = "#!/bin/bash\n#SIM-BEHAVIOUR sleep\n"
            sched.submit(JobSpec(script=script, user="alice", uid=1001, gid=1001, work_dir=str(cluster.home_prefix)))
            if index % 1000 == 0:
                await asyncio.sleep(0)  # let the scheduler pass run
        async with await cluster.connect(cluster.command_nodes[0].node) as conn:
            sbatch_times: list[float] = []
            for _ in range(sample):
                t0 = time.perf_counter()
                result = await conn.run("sudo -n -u bob sbatch --parsable", input="#!/bin/bash\n#SIM-BEHAVIOUR sleep\n")
                sbatch_times.append(time.perf_counter() - t0)
                assert result.exit_status == 0, result.stderr
            load_seconds = time.perf_counter() - started
            await asyncio.sleep(0.1)
            times: list[float] = []
            lines = 0
            for _ in range(squeue_calls):
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                result = await conn.run("squeue")
                times.append(time.perf_counter() - t0)
                lines = str(result.stdout).count("\n") - 1
        states = [j.state.value for j in sched.jobs.values()]
        rss = psutil.Process().memory_info().rss / 2**20
        return Result(
            jobs=len(states),
            running=states.count("RUNNING"),
            pending=states.count("PENDING"),
            gateways=len(cluster.gateway_nodes),
            load_seconds=round(load_seconds, 2),
            sbatch_ssh_p50_ms=round(statistics.median(sbatch_times) * 1000, 1),
            squeue_lines=lines,
            squeue_p50_ms=round(percentile(times, 0.5) * 1000, 1),
            squeue_p99_ms=round(percentile(times, 0.99) * 1000, 1),
            rss_mb=round(rss, 1),
        )


def main(argv: list[str] | None = None) -> Result:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_simulator", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few hundred jobs, for tests")
    args = parser.parse_args(argv)
    if args.smoke:
        result = asyncio.run(bench(jobs=300, gateways=3, compute=4, cpus=50, squeue_calls=5, listeners=20))
    else:
        result = asyncio.run(bench(jobs=10_000, gateways=20, compute=100, cpus=64, squeue_calls=50, listeners=1000))
    print(json.dumps(asdict(result), indent=2))
    return result


if __name__ == "__main__":
    main()
