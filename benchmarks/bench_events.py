"""Pushed job state at scale: 1,000 open ``GET /jobs/<id>/events`` streams on one runner (issue 15).

``python -m benchmarks.bench_events`` (``--smoke``: 50 streams). The runner runs as ``python -m runner serve`` in
its own process, on a simulated cluster with a real etcd, so its RSS and CPU time are its own. One record per
stream is written straight into etcd; every stream is opened over TCP and reads its first event. Then:

- RSS per open stream: the runner's resident set after the streams opened, less before, per stream;
- idle CPU: the runner's CPU seconds over a quiet window (no changes, shorter than the keep-alive period),
  which should be zero work per stream;
- event latency: a change written to etcd by another client (as another runner process would) until the
  stream of that job delivers it, one change at a time, p50/p99 (target p50 <= 50 ms).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import httpx
import psutil

from benchmarks.common import (
    API_AUTH,
    BenchResult,
    Figure,
    bench_runner_config,
    ms,
    percentile,
    raised_file_limit,
    run_cli,
    store_jobs,
)
from runner.records import JobRecord
from runner.state import StateStore
from simulator import ClusterConfig, SimCluster
from simulator.etcd import EtcdServer


@dataclass(frozen=True)
class Sizes:
    streams: int
    changes: int
    idle_seconds: float
    max_seconds: float  # for opening the streams, and for the changes


FULL = Sizes(streams=1_000, changes=200, idle_seconds=10.0, max_seconds=120.0)
SMOKE = Sizes(streams=50, changes=20, idle_seconds=1.0, max_seconds=60.0)


class ServedRunner:
    """``python -m runner serve --config FILE`` in its own process; :attr:`url` once it listens."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._folder = tempfile.TemporaryDirectory()
        path = Path(self._folder.name) / "config.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("runner API:"):
                self.url = line.split()[2]
                break
        if not self.url:
            raise RuntimeError(f"runner serve exited ({self.proc.wait()}) before it listened")
        self.process = psutil.Process(self.proc.pid)
        self.tail: collections.deque[str] = collections.deque(maxlen=50)
        # the runner's log is drained all along: a full pipe would stop the runner at its next log line
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line.rstrip("\n"))

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._folder.cleanup()


class Stream:
    """One open event stream: counts its events and notes when each change's marker arrived."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.first = asyncio.Event()
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def read(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"/jobs/{self.job_id}/events") as response:
            if response.status_code != 200:
                raise RuntimeError(f"events of {self.job_id}: {response.status_code}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = json.loads(line.removeprefix("data: "))
                marker = data["details"].get("bench-marker")
                if marker and marker not in self.arrived:
                    self.arrived[marker] = time.perf_counter()
                    self.changed.set()
                self.first.set()


async def bench(sizes: Sizes) -> BenchResult:
    result = BenchResult()
    with raised_file_limit(), EtcdServer() as etcd:
        async with SimCluster(ClusterConfig.build(command=1, compute=1, gateways=1)) as cluster:
            config = bench_runner_config(cluster, etcd, watcher={"interval": 3600, "leader_ttl": 10})
            etcd_client = aetcd.Client(host=etcd.host, port=etcd.port)
            await etcd_client.connect()
            store = StateStore(etcd_client, config["etcd_prefix"])
            ids = [f"events{i:05d}" for i in range(sizes.streams)]
            runner = await asyncio.to_thread(ServedRunner, config)
            try:
                # stored after the job watcher's start-up tick, so the idle watcher never ends them
                await _first_tick(runner)
                await store_jobs(store, ids)
                await _measure(sizes, runner, store, ids, result)
            except BaseException:
                print("\n".join(runner.tail), file=sys.stderr)
                raise
            finally:
                runner.stop()
                await etcd_client.close()
    return result


async def _first_tick(runner: ServedRunner, max_seconds: float = 60.0) -> None:
    """Wait until the runner's metrics show one job-watcher step."""
    step = 'bwvisu_runner_loop_step_seconds_count{loop="job-watcher"}'
    deadline = time.monotonic() + max_seconds
    async with httpx.AsyncClient(base_url=runner.url, auth=API_AUTH, trust_env=False) as client:
        while True:
            text = (await client.get("/metrics")).text
            if any(line.startswith(step) and float(line.split()[-1]) >= 1 for line in text.splitlines()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the runner's job watcher never ticked")
            await asyncio.sleep(0.1)


async def _measure(sizes: Sizes, runner: ServedRunner, store: StateStore, ids: list[str], result: BenchResult) -> None:
    limits = httpx.Limits(max_connections=sizes.streams + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=runner.url, auth=API_AUTH, timeout=httpx.Timeout(60, read=None), limits=limits, trust_env=False
    ) as client:
        await asyncio.sleep(0.5)  # let the just-started runner settle before its baseline RSS is read
        rss_before = runner.rss_mb()
        baseline_cpu = await _idle_cpu(runner, sizes.idle_seconds)  # its own loops, with no stream open
        streams = [Stream(job_id) for job_id in ids]
        readers = [asyncio.create_task(s.read(client)) for s in streams]
        try:
            started = time.perf_counter()
            async with asyncio.timeout(sizes.max_seconds):
                await asyncio.gather(*(s.first.wait() for s in streams))
            open_seconds = time.perf_counter() - started
            rss_after = runner.rss_mb()
            idle_cpu = await _idle_cpu(runner, sizes.idle_seconds)
            latencies = await _changes(sizes, store, streams)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    per_stream_kb = (rss_after - rss_before) * 1024 / sizes.streams
    idle_us = max(0.0, idle_cpu - baseline_cpu) * 1e6 / sizes.streams / sizes.idle_seconds
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    params = {"streams": sizes.streams}
    result.add(
        Figure("events.open_seconds", round(open_seconds, 2), "s", params),
        Figure("events.rss_kb_per_stream", round(per_stream_kb, 1), "KiB", params),
        Figure(
            "events.idle_cpu_us_per_stream_s",
            round(idle_us, 2),
            "us/s",
            params,
            "0 (no work between events)",
            idle_us < 1.0,
            note=f"runner {idle_cpu:.3f} CPU s in {sizes.idle_seconds:.0f} s with them, {baseline_cpu:.3f} without",
        ),
        Figure("events.latency_p50_ms", ms(p50), "ms", params, "<= 50", p50 <= 0.050),
        Figure("events.latency_p99_ms", ms(p99), "ms", params),
    )
    result.series["events"] = {"latencies_ms": [ms(v) for v in latencies], "rss_mb": [rss_before, rss_after]}
    print(
        f"events: {sizes.streams} streams open in {open_seconds:.1f}s; {per_stream_kb:.1f} KiB RSS per stream;"
        f" idle {idle_cpu:.3f} CPU s in {sizes.idle_seconds:.0f}s ({baseline_cpu:.3f} with none open);"
        f" change -> stream p50 {ms(p50)} ms"
        f" p99 {ms(p99)} ms ({len(latencies)} changes)",
        flush=True,
    )


async def _idle_cpu(runner: ServedRunner, seconds: float) -> float:
    """The runner's CPU seconds over a quiet window of ``seconds`` (the window is what is measured)."""
    before = runner.cpu_seconds()
    await asyncio.sleep(seconds)
    return runner.cpu_seconds() - before


async def _changes(sizes: Sizes, store: StateStore, streams: list[Stream]) -> list[float]:
    """One change at a time to a job spread over the streams; seconds from the write to its arrival."""
    latencies: list[float] = []
    deadline = time.monotonic() + sizes.max_seconds
    for index in range(sizes.changes):
        if time.monotonic() > deadline:
            break
        stream = streams[(index * 7919) % len(streams)]
        marker = f"m{index}"

        def marked(record: JobRecord, marker: str = marker) -> JobRecord:
            record.details["bench-marker"] = marker
            return record

        stream.changed.clear()
        written = time.perf_counter()
        await store.update_job(stream.job_id, marked)
        async with asyncio.timeout(30):
            while marker not in stream.arrived:
                await stream.changed.wait()
                stream.changed.clear()
        latencies.append(stream.arrived[marker] - written)
    return latencies


def main(argv: list[str] | None = None) -> BenchResult:
    return run_cli("python -m benchmarks.bench_events", __doc__, bench, (FULL, SMOKE), "50 streams, 20 changes", argv)


if __name__ == "__main__":
    main()
