"""The runner's Prometheus metrics: one :class:`RunnerMetrics` (and one registry) per runner, never the global one.

Events are counted where they happen (submissions, Slurm calls, keyhole requests, loop steps); what the runner
already holds is read at scrape time by collectors (jobs by state, forwards and health per gateway, SSH
connections per node, loop errors), so no state is kept twice. Labels are bounded: outcomes, command names,
loop names, configured gateways and nodes; never job ids or user names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runner.errors import RunnerError
from runner.records import JobState

log = logging.getLogger(__name__)

PREFIX = "bwvisu_runner"
SLURM_COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "getent")
"""Commands counted by name; anything else sent to a command node counts as ``other``."""
ACTIVE_STATES = tuple(s for s in JobState if s is not JobState.FINISHED)
# Submissions wait for sbatch over SSH: tens of milliseconds on a quiet cluster, seconds on a busy controller.
SUBMIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SCRAPE_ETCD_TIMEOUT = 2.0  # seconds a scrape waits for the jobs by state
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def slurm_command(argv: Sequence[str]) -> str:
    """The Slurm command an argument list runs (past ``sudo -n -u UID`` or a site helper), as a bounded label."""
    return next((word for word in argv if word in SLURM_COMMANDS), "other")


def outcome(exc: BaseException | None) -> str:
    """``ok``; ``refused`` for a 4xx (bad input, unknown job, ...); ``failed`` for anything else."""
    if exc is None:
        return "ok"
    if isinstance(exc, RunnerError) and exc.status < 500:
        return "refused"
    return "failed"


class ConnectionSource(Protocol):
    """An SSH node as the connections collector reads it (:class:`runner.ssh.SshNode`)."""

    name: str
    connects: int

    @property
    def connected(self) -> bool: ...


class GatewaySource(Protocol):
    """What the gateway collector reads (:class:`runner.gateway.pool.GatewayPool`)."""

    load: dict[str, int]

    def health(self) -> dict[str, bool]: ...


class LoopSource(Protocol):
    name: str
    errors: int


@dataclass
class Sources:
    """The runner's parts the collectors read at scrape time; filled in by :class:`runner.app.Runner`."""

    active_jobs: Callable[[], Awaitable[Iterable[JobState]]] | None = None
    gateways: GatewaySource | None = None
    nodes: Callable[[], Sequence[ConnectionSource]] = list
    loops: Sequence[LoopSource] = ()
    job_states: dict[JobState, int] | None = None


class _StateCollector(Collector):
    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self._sources
        if s.job_states is not None:
            jobs = GaugeMetricFamily(
                f"{PREFIX}_jobs", "Jobs not yet finished, by bwVisu state (read from etcd at scrape)", labels=["state"]
            )
            for state in ACTIVE_STATES:
                jobs.add_metric([state.value], s.job_states.get(state, 0))
            yield jobs
        if s.gateways is not None:
            forwards = GaugeMetricFamily(
                f"{PREFIX}_gateway_forwards", "Forwarded ports placed on each gateway", labels=["gateway"]
            )
            up = GaugeMetricFamily(f"{PREFIX}_gateway_up", "1 if the gateway is not marked down", labels=["gateway"])
            for gateway, healthy in s.gateways.health().items():
                forwards.add_metric([gateway], s.gateways.load.get(gateway, 0))
                up.add_metric([gateway], 1 if healthy else 0)
            yield forwards
            yield up
        opened = CounterMetricFamily(
            f"{PREFIX}_ssh_connections_opened", "SSH connections opened to each node", labels=["node"]
        )
        connected = GaugeMetricFamily(
            f"{PREFIX}_ssh_connected", "1 if the node's SSH connection is open", labels=["node"]
        )
        for node in s.nodes():
            opened.add_metric([node.name], node.connects)
            connected.add_metric([node.name], 1 if node.connected else 0)
        yield opened
        yield connected
        errors = CounterMetricFamily(
            f"{PREFIX}_loop_errors", "Steps of a background loop that failed (logged)", labels=["loop"]
        )
        for loop in s.loops:
            errors.add_metric([loop.name], loop.errors)
        yield errors


class RunnerMetrics:
    """Counters and histograms of one runner, and the collectors over its state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submissions = Counter(
            f"{PREFIX}_submissions", "Job submissions by outcome (ok, refused: 4xx, failed)", ["outcome"], registry=r
        )
        self.submit_seconds = Histogram(
            f"{PREFIX}_submit_seconds", "Time until Slurm accepted a submitted job", registry=r, buckets=SUBMIT_BUCKETS
        )
        self.loop_step_seconds = Histogram(
            f"{PREFIX}_loop_step_seconds",
            "Duration of one step (tick) of a background loop (job-watcher, keyhole-watcher)",
            ["loop"],
            registry=r,
            buckets=TICK_BUCKETS,
        )
        self.slurm_calls = Counter(
            f"{PREFIX}_slurm_calls", "Commands sent to command nodes, by command", ["command"], registry=r
        )
        self.keyhole_requests = Counter(
            f"{PREFIX}_keyhole_requests",
            "Keyhole requests by outcome (ok, refused: 4xx, failed)",
            ["outcome"],
            registry=r,
        )
        for name in ("ok", "refused", "failed"):  # present from the start, so rates work from the first scrape
            self.submissions.labels(name)
            self.keyhole_requests.labels(name)
        self.sources = Sources()
        r.register(_StateCollector(self.sources))

    @contextmanager
    def submission(self) -> Iterator[None]:
        """Count the submission inside by outcome; time those that Slurm accepted."""
        started = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.submissions.labels(outcome(exc)).inc()
            raise
        self.submissions.labels("ok").inc()
        self.submit_seconds.observe(time.perf_counter() - started)

    def keyhole_request(self, exc: BaseException | None) -> None:
        self.keyhole_requests.labels(outcome(exc)).inc()

    def slurm_call(self, argv: Sequence[str]) -> None:
        self.slurm_calls.labels(slurm_command(argv)).inc()

    def loop_step(self, loop: str, seconds: float) -> None:
        self.loop_step_seconds.labels(loop).observe(seconds)

    async def render(self) -> bytes:
        """The text exposition; jobs by state are read from etcd first (omitted when etcd does not answer)."""
        counts: dict[JobState, int] | None = None
        if self.sources.active_jobs is not None:
            try:
                async with asyncio.timeout(SCRAPE_ETCD_TIMEOUT):
                    states = list(await self.sources.active_jobs())
                counts = {state: states.count(state) for state in ACTIVE_STATES}
            except (RunnerError, TimeoutError) as exc:
                log.debug("metrics: jobs by state unavailable: %s", exc)
                counts = None
        self.sources.job_states = counts
        return generate_latest(self.registry)
