"""The colleagues' benchmarks (simulator, iptables, keyhole) and the containers hook, as figures for the suite.

Each adapter calls the benchmark's own functions with full or smoke sizes and turns what they return into
:class:`~benchmarks.common.Figure` rows with the issue's targets. The keyhole adapter also reads the port
records that :func:`benchmarks.bench_keyhole.spread` left in etcd, for the per-gateway distribution plot.
A benchmark module that cannot be imported yet is reported as skipped, never as a failure of the suite.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import statistics
from collections import Counter
from typing import Any

import aetcd

from benchmarks.common import BenchResult, Figure, ms
from simulator.etcd import EtcdServer

SPREAD_TARGET = 1.05
INSTALL_TARGET = 2.0
READY_TARGET_S = 1.0
CONTAINERS_HOOK = "benchmarks.bench_containers"
"""Module of the containers benchmark: ``async def measure(smoke: bool) -> dict[str, float]``
(figure name -> seconds: cold and cached image builds, ready cluster, Xpra submit-to-available, burst of 50)."""


class Skipped(Exception):
    """The benchmark cannot run here; the message says why (shown in the table)."""


async def simulator(smoke: bool) -> BenchResult:
    from benchmarks import bench_simulator  # noqa: PLC0415 - a colleague's module, imported when it runs

    if smoke:
        got = await bench_simulator.bench(jobs=300, gateways=3, compute=4, cpus=50, squeue_calls=5, listeners=20)
    else:
        got = await bench_simulator.bench(
            jobs=10_000, gateways=20, compute=100, cpus=64, squeue_calls=50, listeners=1000
        )
    params = {"jobs": got.jobs, "gateways": got.gateways}
    result = BenchResult(series={"simulator": vars(got)})
    result.add(
        Figure("simulator.squeue_p50_ms", got.squeue_p50_ms, "ms", params),
        Figure("simulator.squeue_p99_ms", got.squeue_p99_ms, "ms", params),
        Figure("simulator.sbatch_ssh_p50_ms", got.sbatch_ssh_p50_ms, "ms", params),
        Figure("simulator.rss_mb", got.rss_mb, "MiB", params, note="simulator and benchmark in one process"),
    )
    return result


async def iptables(smoke: bool) -> BenchResult:
    from benchmarks import bench_iptables  # noqa: PLC0415

    sizes = [0, 100] if smoke else [0, 1_000, 10_000]
    got = await bench_iptables.main_async(sizes, batch=50 if smoke else 500, singles=20 if smoke else 200)
    result = BenchResult(series={"iptables": {str(k): {"batch_s": v[0], "single_s": v[1]} for k, v in got.items()}})
    for present, (per_batch, per_single) in got.items():
        params = {"rules_present": present}
        result.add(
            Figure("iptables.restore_us_per_rule", round(per_batch * 1e6, 1), "us", params),
            Figure("iptables.single_append_us", round(per_single * 1e6, 1), "us", params),
        )
    top, base = got[sizes[-1]], got[sizes[0]]
    for index, kind in enumerate(("restore", "single_append")):
        ratio = round(top[index] / base[index], 2)
        params = {"rules_present": sizes[-1]}
        result.add(Figure(f"iptables.{kind}_vs_empty", ratio, "x", params, f"<= {INSTALL_TARGET:g}", ratio <= 2))
    return result


def _keyhole_module() -> Any:
    try:
        return importlib.import_module("benchmarks.bench_keyhole")
    except ImportError as exc:  # the keyhole parts are still being written
        raise Skipped(f"benchmarks.bench_keyhole is not importable yet ({exc})") from exc


async def _gateway_loads(etcd: EtcdServer) -> dict[str, list[int]]:
    """Forwards per gateway for each keyhole prefix in etcd, from the port records spread() left there."""
    client = aetcd.Client(host=etcd.host, port=etcd.port, options={"grpc.max_receive_message_length": 256 * 2**20})
    await client.connect()
    try:
        rows = await client.get_prefix(b"/bench-")
    finally:
        await client.close()
    per_prefix: dict[str, Counter[str]] = {}
    for kv in rows:
        prefix, found, _ = kv.key.decode().partition("/keyhole/ports/")
        if found:
            from runner.keyhole.ports import PortRecord  # noqa: PLC0415

            gateway = PortRecord.model_validate_json(kv.value).gateway_ssh_ip
            per_prefix.setdefault(prefix, Counter())[str(gateway)] += 1
    return {prefix: sorted(c.values(), reverse=True) for prefix, c in per_prefix.items()}


async def keyhole(smoke: bool) -> BenchResult:
    bench = _keyhole_module()
    jobs, install_sizes, samples, ready_jobs, check_samples = (
        (200, [0, 100], 20, 3, 3) if smoke else (10_000, [0, 1_000, 10_000], 200, 30, 30)
    )
    result = BenchResult()
    with EtcdServer() as etcd:
        for gateways in (8, 32):
            before = set(await _gateway_loads(etcd))
            ratio, _top, took = await bench.spread(etcd, jobs, gateways)
            loads = [v for k, v in (await _gateway_loads(etcd)).items() if k not in before]
            result.series[f"spread-{gateways}"] = loads[0] if loads else []
            params = {"jobs": jobs, "gateways": gateways}
            met = ratio <= SPREAD_TARGET
            result.add(Figure("gateways.max_over_mean", round(ratio, 3), "x", params, f"<= {SPREAD_TARGET}", met))
            result.add(Figure("gateways.spread_seconds", round(took, 1), "s", params))
    installs = {present: await bench.install_time(present, samples) for present in install_sizes}
    result.series["install"] = {str(k): v for k, v in installs.items()}
    for present, per in installs.items():
        result.add(Figure("gateways.install_ms_per_job", ms(per), "ms", {"rules_present": present}))
    ratio = round(installs[install_sizes[-1]] / installs[0], 2)
    params = {"rules_present": install_sizes[-1]}
    result.add(Figure("gateways.install_vs_empty", ratio, "x", params, f"<= {INSTALL_TARGET:g}", ratio <= 2))
    delays = sorted(await bench.readiness(ready_jobs))
    result.series["readiness"] = delays
    median, p99 = statistics.median(delays), delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    params = {"jobs": len(delays)}
    result.add(
        Figure("readiness.median_s", round(median, 3), "s", params, f"<= {READY_TARGET_S:g}", median <= 1),
        Figure("readiness.p99_s", round(p99, 3), "s", params),
    )
    seen, unseen = await bench.node_check_cost(check_samples)
    params = {"requests": check_samples}
    result.add(
        Figure("keyhole.request_ms_watcher_row", ms(seen), "ms", params),
        Figure("keyhole.request_ms_asking_squeue", ms(unseen), "ms", params),
        Figure("keyhole.node_check_extra_ms", ms(unseen - seen), "ms", params),
    )
    return result


async def containers(smoke: bool) -> BenchResult:
    """Item 6: only with a Docker engine (the module times containers/ and a runner driving it)."""
    if shutil.which("docker") is None:
        raise Skipped("no Docker engine on this machine")
    try:
        module = importlib.import_module(CONTAINERS_HOOK)
    except ImportError as exc:
        raise Skipped(f"{CONTAINERS_HOOK} cannot be imported ({exc})") from exc
    measure = getattr(module, "measure", None)
    if measure is None or not inspect.iscoroutinefunction(measure):
        raise Skipped(f"{CONTAINERS_HOOK}.measure(smoke) is not an async function yet")
    timings: dict[str, float] = await measure(smoke)
    result = BenchResult(series={"containers": timings})
    unit = {True: "count", False: "s"}  # a figure named *_count counts something; every other one is seconds
    result.add(*(Figure(f"containers.{k}", round(v, 2), unit[k.endswith("_count")]) for k, v in timings.items()))
    return result
