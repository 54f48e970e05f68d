"""The idle sweep's bookkeeping over a scripted gateway and an in-memory store: what counts as traffic (a packet
counter that grew, not one that went down), a gateway not read leaves its jobs alone, a failed cancel is retried,
one counter read per gateway per sweep, and stray counting rules removed in the same sweep."""

from __future__ import annotations

import pytest

from runner.errors import SchedulerUnavailable
from runner.gateway.pool import Gateway, GatewayPool
from runner.idle import IDLE_WARNING, LAST_TRAFFIC, IdlePolicy, IdleSweeper, iso
from runner.records import CANCEL_REASON, Change, Forward, JobRecord, JobState
from tests.scripted import Call, ScriptedRunner, answer

pytestmark = pytest.mark.unit

COUNTERS = ["sudo", "-n", "iptables", "-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"]


class Store:
    """The two calls the sweep makes, on records in memory."""

    def __init__(self, *records: JobRecord) -> None:
        self.records = {r.job_id: r for r in records}

    async def active_jobs(self) -> list[tuple[JobRecord, int]]:
        return [(r.model_copy(deep=True), 1) for r in self.records.values() if r.active]

    async def update_job(self, job_id: str, change: Change, known: object = None) -> JobRecord | None:
        changed = change(self.records[job_id].model_copy(deep=True))
        if changed is not None:
            self.records[job_id] = changed
        return changed


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def job(job_id: str = "j1", port: int = 5900) -> JobRecord:
    forward = Forward(internal_port=port, external_port=50001, external_ip="192.0.2.1", gateway_ssh_ip="10.0.0.1",
                      internal_ip="10.1.0.5")  # fmt: skip
    return JobRecord(job_id=job_id, uid="alice", template_name="t.txt", variables={}, state=JobState.AVAILABLE,
                     forwards=[forward])  # fmt: skip


def listing(*rules: tuple[str, int, int]) -> str:
    lines = [
        f'-A BWVISU-ACCT -d 10.1.0.5/32 -p tcp -m tcp --dport {port} -m comment --comment "bwvisu:{j}" -c {n} {n * 60}'
        for j, port, n in rules
    ]
    return "\n".join(["-N BWVISU-ACCT", *lines]) + "\n"


class Gw:
    """A gateway whose counting chain lists ``self.text``."""

    def __init__(self) -> None:
        self.text = listing()
        self.node = ScriptedRunner("gw").on(COUNTERS, lambda call: answer(self.text))
        self.pool = GatewayPool([Gateway(self.node, "10.0.0.1", "192.0.2.1")], down_retry_after=30)
        self.pool.accounting = True

    def reads(self) -> int:
        return sum(1 for argv in self.node.calls if argv == COUNTERS)

    def restores(self) -> list[Call]:
        return [c for c in self.node.log if c.argv[:3] == ["sudo", "-n", "iptables-restore"]]


def sweeper(store: Store, gw: Gw, clock: Clock, cancelled: list[str], fail: bool = False) -> IdleSweeper:
    async def cancel(job_id: str) -> None:
        if fail:
            raise SchedulerUnavailable(internal="no command node")
        cancelled.append(job_id)
        store.records[job_id].state = JobState.COMPLETING

    return IdleSweeper(store, gw.pool, IdlePolicy(600.0, 120.0), cancel, clock=clock)  # type: ignore[arg-type]


async def test_growing_counters_are_traffic_falling_ones_a_new_baseline() -> None:
    cancelled: list[str] = []
    store, gw, clock = Store(job()), Gw(), Clock()
    sweep = sweeper(store, gw, clock, cancelled)
    gw.text = listing(("j1", 5900, 40))
    await sweep.tick()  # the first sight sets the baseline: old counters are not "now"
    assert LAST_TRAFFIC not in store.records["j1"].details
    clock.now += 10
    gw.text = listing(("j1", 5900, 41))
    await sweep.tick()
    assert store.records["j1"].details[LAST_TRAFFIC] == iso(clock.now)
    clock.now += 500
    gw.text = listing(("j1", 5900, 0))  # the rule was written again: counters start over
    await sweep.tick()
    assert (
        store.records["j1"]
        .details[IDLE_WARNING]
        .startswith(f"no traffic through the job's forwards since {iso(clock.now - 500)}")
    )
    clock.now += 100
    await sweep.tick()
    assert cancelled == ["j1"]
    assert store.records["j1"].details[CANCEL_REASON] == (
        f"idle: no traffic through its forwards for 10 minutes (since {iso(clock.now - 600)})"
    )
    assert gw.reads() == 4  # one counter read per sweep


async def test_a_gateway_not_read_leaves_its_jobs_alone() -> None:
    cancelled: list[str] = []
    store, gw, clock = Store(job()), Gw(), Clock()
    sweep = sweeper(store, gw, clock, cancelled)
    gw.text = listing(("j1", 5900, 0))
    await sweep.tick()
    gw.node.down = True
    clock.now += 3600
    await sweep.tick()
    assert cancelled == []
    assert IDLE_WARNING not in store.records["j1"].details


async def test_a_failed_cancel_is_tried_again_with_the_same_reason() -> None:
    cancelled: list[str] = []
    store, gw, clock = Store(job()), Gw(), Clock()
    gw.text = listing(("j1", 5900, 0))
    failing = sweeper(store, gw, clock, cancelled, fail=True)
    await failing.tick()
    clock.now += 601
    await failing.tick()
    reason = store.records["j1"].details[CANCEL_REASON]
    assert store.records["j1"].state is JobState.AVAILABLE
    clock.now += 5
    working = sweeper(store, gw, clock, cancelled)  # e.g. the next leader
    await working.tick()
    assert cancelled == ["j1"]
    assert store.records["j1"].details[CANCEL_REASON] == reason


async def test_missing_and_stray_counting_rules_are_fixed_in_one_restore() -> None:
    cancelled: list[str] = []
    store, gw, clock = Store(job("j1"), job("j2", 5901)), Gw(), Clock()
    gw.text = listing(("j1", 5900, 3), ("gone", 5999, 9), ("j1", 5900, 0))
    await sweeper(store, gw, clock, cancelled).tick()
    [restore] = gw.restores()
    assert restore.stdin == (
        "*filter\n"
        '-D BWVISU-ACCT -d 10.1.0.5/32 -p tcp -m tcp --dport 5999 -m comment --comment "bwvisu:gone"\n'
        '-D BWVISU-ACCT -d 10.1.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1"\n'
        '-A BWVISU-ACCT -d 10.1.0.5/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:j2"\n'
        "COMMIT\n"
    )
