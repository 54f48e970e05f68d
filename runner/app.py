"""Assembles a runner from its settings: etcd, command nodes, the job service, the watchers and the REST API.

:class:`Runner` is an async context manager that owns every connection and background loop; several runners
(with different settings) can live in one process, as the tests and the embedded default do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

import aetcd
from fastapi import FastAPI

from runner import __version__
from runner.active import ActiveJobs
from runner.api import create_app
from runner.api.ops import Ops, missing_components
from runner.config import Endpoint, Settings
from runner.etcd import describe_link, etcd_client
from runner.events import JobFeed
from runner.idle import IdlePolicy, IdleSweeper
from runner.jobs import Jobs
from runner.keyhole.assembly import Keyhole
from runner.keyhole.service import Fault
from runner.leader import Leadership
from runner.loops import Loop
from runner.metrics import RunnerMetrics
from runner.records import JobState
from runner.slurm.cluster import CommandNodes, SlurmCluster
from runner.ssh import CommandRunner, SshNode
from runner.state import StateStore
from runner.templates import TemplateStore
from runner.users import ClusterUsers, runner_accounts
from runner.watcher import JobWatcher

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds a cancelled background task may take to stop
FEED_RESTART = 1.0  # seconds before a broken job-feed watch is started again
# Submissions wake the job watcher so new jobs are seen promptly; a burst of them still costs a few ticks.
WOKEN_TICK_GAP = 0.5


def command_runners(settings: Settings) -> list[CommandRunner]:
    return [SshNode(n.ip, n.port, n.user, settings.ssh) for n in settings.command_nodes]


class Runner:
    """One configured runner: use ``async with Runner(settings) as runner`` and serve ``runner.app``."""

    def __init__(
        self,
        settings: Settings,
        *,
        command_nodes: list[CommandRunner] | None = None,
        keyhole_listen: Endpoint | None = None,
        keyhole_fault: Fault | None = None,
    ) -> None:
        self.settings = settings
        self._given_nodes = command_nodes
        self._keyhole_listen = keyhole_listen
        self._keyhole_fault = keyhole_fault
        self.etcd: aetcd.Client | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()
        self.metrics = RunnerMetrics()  # this runner's own registry: several runners may share a process

    async def __aenter__(self) -> Runner:
        # Everything opened so far is closed again if a later step fails (e.g. the keyhole port is taken).
        stack = contextlib.AsyncExitStack()
        try:
            await self._start(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        s = self.settings
        self.etcd = etcd_client(s.etcd_servers, s.etcd)
        await self.etcd.connect()
        stack.push_async_callback(self.etcd.close)
        self.store = StateStore(self.etcd, s.etcd_prefix)
        stack.push_async_callback(self.store.close)  # its pending writes are saved before etcd is closed
        self.nodes = CommandNodes(self._given_nodes or command_runners(s), s.ssh.down_retry_after)
        stack.push_async_callback(self.nodes.close)
        self.scheduler = SlurmCluster(self.nodes, s.command_node_helper)
        self.templates = TemplateStore(s.templates_dir)
        self.leadership = Leadership(self.etcd, f"{s.etcd_prefix}/leader/watchers", s.watcher.leader_ttl)
        # one view of the active jobs for the job watcher, the keyhole watcher and the idle sweep (closed by the
        # job watcher): read in full once, then kept by an etcd watch
        self.active = ActiveJobs(self.store)
        self.job_watcher = JobWatcher(
            self.store, self.scheduler, pending_grace=3 * s.ssh.command_timeout, view=self.active
        )
        self.watch_loop = Loop(
            "job-watcher",
            self.job_watcher.tick,
            s.watcher.interval,
            self.leadership.wait_leader,
            min_gap=min(s.watcher.interval, WOKEN_TICK_GAP),
        )
        self.feed = JobFeed(self.etcd, s.etcd_prefix)
        # one watch for every follower of a job; when it breaks it is started again a second later
        self.feed_loop = Loop("job-feed", self.feed.run, FEED_RESTART)
        self.jobs = Jobs(
            self.store,
            self.scheduler,
            self.templates,
            s.bwvisu_home_prefix,
            users=ClusterUsers(
                self.scheduler.user_account,
                min_uid=s.min_uid,
                max_uid=s.max_uid,
                runner_accounts=runner_accounts(s),
            ),
            expand_keyhole=self._expand_keyhole,
            max_jobs_per_user=s.max_jobs_per_user,
            feed=self.feed,
            on_submitted=self.watch_loop.wake,
            metrics=self.metrics,
        )
        ops = Ops(self.metrics, lambda: missing_components(self.leadership, self.nodes, self.keyhole.pool))
        self.app: FastAPI = create_app(self.jobs, self.templates, s, ops=ops)
        self.keyhole = Keyhole(
            s,
            self.etcd,
            self.store,
            self.scheduler,
            listen=self._keyhole_listen,
            fault=self._keyhole_fault,
            gate=self.leadership.wait_leader,
            view=self.active,
        )
        self.idle = self._idle_sweep(s)
        self._observe()
        await self.keyhole.start()
        stack.push_async_callback(self.keyhole.close)
        stack.push_async_callback(self.leadership.resign)
        stack.push_async_callback(self.job_watcher.close)
        self._tasks = [
            asyncio.create_task(self.leadership.run(), name="leadership"),
            asyncio.create_task(self.watch_loop.run(), name="job-watcher"),
            asyncio.create_task(self.keyhole.loop.run(), name="keyhole-watcher"),
            asyncio.create_task(self.feed_loop.run(), name="job-feed"),
        ]
        if self.idle is not None:
            self._tasks.append(asyncio.create_task(self.idle[1].run(), name="idle-sweep"))
        stack.push_async_callback(self._stop_tasks)
        etcd = ", ".join(f"{e.ip}:{e.port}" for e in s.etcd_servers)
        log.info(
            "runner ready (version %s): %d command nodes, %d gateways, etcd %s (%s)",
            __version__,
            len(s.command_nodes),
            len(s.gateway_nodes),
            etcd,
            describe_link(s.etcd),
        )

    def _idle_sweep(self, s: Settings) -> tuple[IdleSweeper, Loop] | None:
        """With ``idle-timeout-minutes`` set: forwards get counting rules, and the leader sweeps for idle jobs."""
        if s.idle_timeout_minutes is None:
            return None
        self.keyhole.pool.accounting = True  # before the keyhole serves: every forward written gets its rule
        policy = IdlePolicy.from_minutes(s.idle_timeout_minutes, s.idle_warning)
        sweeper = IdleSweeper(self.store, self.keyhole.pool, policy, self.jobs.cancel, view=self.active)
        return sweeper, Loop("idle-sweep", sweeper.tick, policy.interval, self.leadership.wait_leader)

    async def _stop_tasks(self) -> None:
        """Cancel the background tasks; one still running after :data:`STOP_GRACE` (a library swallowed the
        cancellation) is named in the log and cancelled again, so stopping never hangs on it."""
        for task in self._tasks:
            task.cancel()
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
        for task in pending:
            log.warning(
                "task %s still running %.0f s after its cancellation; cancelling again", task.get_name(), STOP_GRACE
            )
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=STOP_GRACE)
        await asyncio.gather(*(t for t in self._tasks if t.done()), return_exceptions=True)

    def _observe(self) -> None:
        """Hook the metrics into the parts that count events, and point the collectors at the rest."""
        m = self.metrics
        self.nodes.on_call = m.slurm_call
        self.keyhole.service.on_outcome = m.keyhole_request
        loops = [self.watch_loop, self.keyhole.loop, *([self.idle[1]] if self.idle else [])]
        for loop in loops:
            loop.on_step = m.loop_step
        ssh = [*self.nodes.runners, *(g.runner for g in self.keyhole.pool.gateways)]
        m.sources.active_jobs = self._active_states
        m.sources.gateways = self.keyhole.pool
        m.sources.nodes = lambda: [n for n in ssh if isinstance(n, SshNode)]
        m.sources.loops = loops

    async def _active_states(self) -> list[JobState]:
        return [record.state for record, _ in await self.store.active_jobs()]

    def _expand_keyhole(self, script: str, job_id: str, token: str, session_secret: str) -> str:
        return self.keyhole.expand(script, job_id, token, session_secret)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the loops, resign leadership, then close the keyhole, the SSH connections and etcd."""
        await self._stack.aclose()
