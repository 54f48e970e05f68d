"""Submission on the simulator: REST ``POST /jobs`` -> etcd -> SSH ``sbatch``, against its ceiling and baseline.

``python -m benchmarks.bench_submit`` (``--smoke`` for a seconds-long run). For 1, 10, 50 and 200 concurrent
clients, measured side by side in the same run and cluster (timings drift on a shared machine, ratios less):

- runner: a real uvicorn server on 127.0.0.1 port 0 and ``httpx.AsyncClient`` clients posting process-free
  sleep jobs from a separate load-generator process (:mod:`benchmarks.loadgen`, as a frontend would be);
  the runner shares its process with the simulated cluster, as the ceiling's client does. Each request
  writes the record to etcd, runs ``sbatch`` over the kept-open SSH connection and saves the Slurm id
  before answering;
- ceiling: the same ``sbatch`` command line and script through bare asyncssh over one kept-open connection,
  with the runner's session limit (``ssh.max_sessions`` channels at once);
- baseline: the runner's own submission path with :class:`~runner.ssh.OneShotSshNode` command nodes
  (a new SSH connection per command).

Targets: runner >= 0.5x the ceiling and >= 5x the baseline at every concurrency.

The cost of securing etcd: at 10 clients, the runner against a plain etcd and against one with TLS (client
certificates demanded) and etcd's authentication (a login token on every call), in alternating rounds on the
same cluster; reported as both rates (median of the rounds) and their ratio, without a target.
"""

from __future__ import annotations

import asyncio
import shlex
import statistics
import time
import uuid
from dataclasses import dataclass

from benchmarks.common import (
    LOOPBACK_API,
    BenchResult,
    Figure,
    LoadResult,
    bench_runner_config,
    closed_loop,
    ms,
    run_cli,
    submit_body,
)
from benchmarks.loadgen import run_loadgen
from runner.app import Runner
from runner.config import Settings, settings_from_mapping
from runner.slurm import cli as slurm
from runner.ssh import CommandRunner, OneShotSshNode
from runner.templates import TemplateStore
from runner.web.server import ApiServer
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer
from simulator.etcd_auth import EtcdAuth

LEVELS = (1, 10, 50, 200)
TLS_CLIENTS = 10
CEILING_TARGET = 0.5
BASELINE_TARGET = 5.0


@dataclass(frozen=True)
class Sizes:
    """Submissions per level (runner and ceiling), for the baseline, and the time cap of one measurement."""

    per_level: int
    baseline_per_level: int
    max_seconds: float
    levels: tuple[int, ...]
    tls_rounds: int


FULL = Sizes(per_level=300, baseline_per_level=150, max_seconds=15.0, levels=LEVELS, tls_rounds=3)
SMOKE = Sizes(per_level=20, baseline_per_level=20, max_seconds=10.0, levels=(1, 10), tls_rounds=1)


def _settings(cluster: SimCluster, etcd: EtcdServer) -> Settings:
    return settings_from_mapping(bench_runner_config(cluster, etcd))


async def runner_load(
    cluster: SimCluster, etcd: EtcdServer, clients: int, total: int, max_seconds: float, *, one_shot: bool
) -> LoadResult:
    """``total`` REST submissions by ``clients`` concurrent clients through a fresh runner (own etcd prefix)."""
    settings = _settings(cluster, etcd)
    nodes: list[CommandRunner] | None = None
    if one_shot:
        nodes = [OneShotSshNode(n.ip, n.port, n.user, settings.ssh) for n in settings.command_nodes]
    async with Runner(settings, command_nodes=nodes) as runner, ApiServer(runner.app, LOOPBACK_API) as server:
        return await run_loadgen(server.url, clients, total, max_seconds)


async def ceiling_load(
    cluster: SimCluster, etcd: EtcdServer, clients: int, total: int, max_seconds: float
) -> LoadResult:
    """The runner's ``sbatch`` command and script over one bare asyncssh connection, session-limited."""
    settings = _settings(cluster, etcd)
    body = submit_body()
    script = TemplateStore(settings.templates_dir).render(body["template-name"], body["variables"])
    workdir = f"{settings.bwvisu_home_prefix}/{body['uid']}"
    sessions = asyncio.Semaphore(settings.ssh.max_sessions)
    conn = await cluster.connect(cluster.command_nodes[0].node)

    async def sbatch(_index: int) -> None:
        command = shlex.join(slurm.sbatch_argv(body["uid"], uuid.uuid4().hex, workdir))
        async with sessions:
            result = await conn.run(command, input=script, check=False)
        if result.exit_status != 0:
            raise RuntimeError(f"sbatch: {result.stderr!r}")

    try:
        return await closed_loop(clients, total, max_seconds, sbatch)
    finally:
        conn.close()
        await conn.wait_closed()


async def connect_cost(cluster: SimCluster, samples: int) -> float:
    """Median seconds to open and close one SSH connection: what the baseline adds to every command."""
    times: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        conn = await cluster.connect(cluster.command_nodes[0].node)
        conn.close()
        await conn.wait_closed()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _ratio(a: LoadResult, b: LoadResult) -> float:
    return round(a.rate / b.rate, 2) if b.rate > 0 else float("nan")


async def tls_cost(cluster: SimCluster, plain: EtcdServer, sizes: Sizes, result: BenchResult) -> None:
    """Runner submissions at :data:`TLS_CLIENTS` clients: plain etcd and TLS + auth etcd, alternating rounds."""
    loads: dict[str, list[LoadResult]] = {"plain": [], "tls": []}
    with EtcdServer(tls=True, auth=EtcdAuth(prefix="/bench-secure")) as secure:
        for _ in range(sizes.tls_rounds):
            for kind, etcd in (("plain", plain), ("tls", secure)):
                load = await runner_load(cluster, etcd, TLS_CLIENTS, sizes.per_level, sizes.max_seconds, one_shot=False)
                loads[kind].append(load)
    median = {kind: sorted(runs, key=lambda r: r.rate)[len(runs) // 2] for kind, runs in loads.items()}
    params = {"clients": TLS_CLIENTS, "rounds": sizes.tls_rounds}
    for kind, load in median.items():
        summary = load.summary()
        result.add(
            Figure(f"submit.etcd_{kind}.jobs_per_s", summary["per_second"], "jobs/s", params),
            Figure(f"submit.etcd_{kind}.p50_ms", summary["p50_ms"], "ms", params),
        )
        if any(r.errors for r in loads[kind]):
            errors = sum(r.errors for r in loads[kind])
            result.add(Figure(f"submit.etcd_{kind}.errors", errors, "requests", params, "0", False))
    ratio = _ratio(median["tls"], median["plain"])
    result.add(Figure("submit.etcd_tls_over_plain", ratio, "x", params, note="TLS + client cert + auth token"))
    rates = {kind: " / ".join(f"{r.rate:.1f}" for r in runs) for kind, runs in loads.items()}
    print(
        f"submit: {TLS_CLIENTS} clients: plain etcd {rates['plain']}/s, TLS + auth etcd {rates['tls']}/s"
        f" (rounds); TLS/plain {ratio}",
        flush=True,
    )


async def bench(sizes: Sizes) -> BenchResult:
    """Every level: ceiling, runner and baseline one after the other on the same cluster and etcd."""
    result = BenchResult()
    # Enough CPUs that every sleep job starts at once: no queue builds up in the scheduler's way.
    config = ClusterConfig.build(command=1, compute=50, cpus=200, gateways=1)
    with EtcdServer() as etcd:
        async with SimCluster(config) as cluster:
            for clients in sizes.levels:
                ceiling = await ceiling_load(cluster, etcd, clients, sizes.per_level, sizes.max_seconds)
                runner = await runner_load(cluster, etcd, clients, sizes.per_level, sizes.max_seconds, one_shot=False)
                baseline = await runner_load(
                    cluster, etcd, clients, sizes.baseline_per_level, sizes.max_seconds, one_shot=True
                )
                level = {"ceiling": ceiling.summary(), "runner": runner.summary(), "baseline": baseline.summary()}
                result.series[str(clients)] = level
                params = {"clients": clients}
                for kind, load in (("runner", runner), ("ceiling", ceiling), ("baseline", baseline)):
                    summary = level[kind]
                    result.add(
                        Figure(f"submit.{kind}.jobs_per_s", summary["per_second"], "jobs/s", params),
                        Figure(f"submit.{kind}.p50_ms", summary["p50_ms"], "ms", params),
                        Figure(f"submit.{kind}.p99_ms", summary["p99_ms"], "ms", params),
                    )
                    if load.errors:
                        result.add(Figure(f"submit.{kind}.errors", load.errors, "requests", params, "0", False))
                over_ceiling, over_baseline = _ratio(runner, ceiling), _ratio(runner, baseline)
                result.add(
                    Figure(
                        "submit.runner_over_ceiling",
                        over_ceiling,
                        "x",
                        params,
                        f">= {CEILING_TARGET}",
                        over_ceiling >= CEILING_TARGET,
                    ),
                    Figure(
                        "submit.runner_over_baseline",
                        over_baseline,
                        "x",
                        params,
                        f">= {BASELINE_TARGET:g}",
                        over_baseline >= BASELINE_TARGET,
                    ),
                )
                print(
                    f"submit: {clients:>3} clients: runner {runner.rate:7.1f}/s (p50 {level['runner']['p50_ms']} ms,"
                    f" p99 {level['runner']['p99_ms']} ms), ceiling {ceiling.rate:7.1f}/s,"
                    f" baseline {baseline.rate:6.1f}/s; runner/ceiling {over_ceiling}, runner/baseline {over_baseline}",
                    flush=True,
                )
            await tls_cost(cluster, etcd, sizes, result)
            connect = await connect_cost(cluster, 20)
            result.add(Figure("submit.ssh_connect_ms", ms(connect), "ms", {"samples": 20}, note="open + close"))
            print(f"submit: one SSH connection (open + close) takes {ms(connect)} ms (median of 20)", flush=True)
    return result


def main(argv: list[str] | None = None) -> BenchResult:
    return run_cli(
        "python -m benchmarks.bench_submit",
        __doc__,
        bench,
        (FULL, SMOKE),
        "about 20 submissions per level, for tests",
        argv,
    )


if __name__ == "__main__":
    main()
