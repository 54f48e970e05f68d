"""Helpers shared by the benchmarks: figures, percentiles, bounded load loops and a runner on the simulator.

Every load loop here is bounded twice, by a count and by a deadline, and talks only to 127.0.0.0/8.
A :class:`Figure` is one reported number with its target; :func:`bench_runner_config` builds the runner's
settings for a simulated cluster and a local etcd the way the integration tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from runner.app import Runner
from runner.config import ApiSettings
from runner.records import JobRecord, JobState, SubmitPhase
from runner.state import StateStore
from runner.web.server import ApiServer
from simulator import SimCluster
from simulator.etcd import EtcdServer, free_port

TEMPLATES = Path(__file__).parent / "templates"
SLEEP_TEMPLATE = "bench_sleep.txt"
SLEEP_VARIABLES = {"minutes": "600", "seconds": "36000"}
API_AUTH = ("bwvisu-web", "bench-password")
LOOPBACK_API = ApiSettings(host="127.0.0.1", port=0)


@dataclass
class Figure:
    """One reported number: ``met`` is None when the figure has no target."""

    name: str
    value: float | None
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    target: str = ""
    met: bool | None = None
    note: str = ""

    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} [{extra}]" if extra else self.name


@dataclass
class BenchResult:
    """What one benchmark hands the orchestrator: its figures and the raw series its plots are drawn from."""

    figures: list[Figure] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class LoadResult:
    """A closed-loop run: ``count`` operations in ``seconds`` of wall time, with per-operation latencies."""

    count: int
    seconds: float
    latencies: list[float]
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.rate, 1),
            "p50_ms": ms(percentile(self.latencies, 0.5)),
            "p99_ms": ms(percentile(self.latencies, 0.99)),
        }


async def closed_loop(
    clients: int, total: int, max_seconds: float, operation: Callable[[int], Awaitable[None]]
) -> LoadResult:
    """``clients`` workers run ``operation(i)`` back to back until ``total`` were started or time is up.

    A failed operation counts as an error, not as done work, and does not stop the run.
    """
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        nonlocal errors
        for index in counter:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                await operation(index)
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return LoadResult(len(latencies), time.perf_counter() - began, latencies, errors)


def bench_runner_config(cluster: SimCluster, etcd: EtcdServer, **overrides: Any) -> dict[str, Any]:
    """Runner settings (as a bwVisu-style mapping) for ``cluster`` and ``etcd``, under a fresh etcd prefix
    (below the runner's role's prefix, and with its certificate and login, when ``etcd`` has TLS or auth)."""
    root = etcd.auth.prefix if etcd.auth is not None else ""
    data: dict[str, Any] = {
        **cluster.runner_config(),
        "etcd-servers": [{"ip": etcd.host, "port": etcd.port}],
        "etcd": etcd.runner_etcd(),
        "etcd_prefix": f"{root}/bench-{uuid.uuid4().hex[:8]}",
        "templates_dir": str(TEMPLATES),
        "keyholed-servers": [{"ip": "127.0.0.1", "port": free_port()}],
        "api": {"host": "127.0.0.1", "port": 0, "user": API_AUTH[0], "password": API_AUTH[1]},
        "ssh": {
            "client_keys": [str(cluster.client_key_path)],
            "known_hosts": str(cluster.known_hosts_path),
            "command_timeout": 60,
            "connect_timeout": 30,
        },
        "watcher": {"interval": 2.0, "leader_ttl": 10},
    }
    data.update(overrides)
    return data


@asynccontextmanager
async def http_api(runner: Runner, connections: int) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``runner.app`` with uvicorn on 127.0.0.1 port 0 and yield an authenticated client for it."""
    async with (
        ApiServer(runner.app, LOOPBACK_API) as server,
        httpx.AsyncClient(
            base_url=server.url,
            auth=API_AUTH,
            timeout=120,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        ) as client,
    ):
        yield client


async def first_tick_done(runner: Runner, max_seconds: float = 30.0) -> None:
    """Wait for the job watcher's start-up tick, so a long interval afterwards means a quiet watcher."""
    deadline = time.monotonic() + max_seconds
    while runner.watch_loop.iterations < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("the job watcher never ticked")
        await asyncio.sleep(0.02)


async def store_jobs(store: StateStore, ids: list[str], slurm_ids: list[str] | None = None) -> None:
    """Write running-job records (with Slurm-sized details) straight into etcd, 64 writes in flight."""
    limit = asyncio.Semaphore(64)

    async def one(index: int, job_id: str) -> None:
        slurm_id = slurm_ids[index] if slurm_ids else str(100_000 + index)
        record = JobRecord(
            job_id=job_id,
            uid="alice",
            template_name=SLEEP_TEMPLATE,
            variables=SLEEP_VARIABLES,
            state=JobState.SUBMITTED,
            submit_phase=SubmitPhase.SUBMITTED,
            slurm_id=slurm_id,
            details={"slurm-job-id": slurm_id},
        )
        async with limit:
            await store.create_job(record, f"token-{job_id}")

    await asyncio.gather(*(one(i, job_id) for i, job_id in enumerate(ids)))


def submit_body(uid: str = "alice") -> dict[str, Any]:
    return {"uid": uid, "template-name": SLEEP_TEMPLATE, "variables": SLEEP_VARIABLES}


SizesT = TypeVar("SizesT")


def run_cli(
    prog: str,
    doc: str | None,
    bench: Callable[[SizesT], Coroutine[Any, Any, BenchResult]],
    sizes: tuple[SizesT, SizesT],
    smoke_help: str,
    argv: list[str] | None = None,
) -> BenchResult:
    """``python -m benchmarks.<name> [--smoke]``: run one benchmark (full, smoke) and print its figures as JSON."""
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    args = parser.parse_args(argv)
    full, smoke = sizes
    result = asyncio.run(bench(smoke if args.smoke else full))
    print(json.dumps([asdict(f) for f in result.figures], indent=1))
    return result


@contextlib.contextmanager
def raised_file_limit() -> Iterator[None]:
    """Raise the open-file limit to its hard maximum for a run with thousands of sockets, then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
