"""The keyhole watcher's check of stored forwards: port range, the job's own nodes, the compute networks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from runner.config import settings_from_mapping
from runner.gateway.pool import Gateway
from runner.keyhole.guard import Target, TargetGuard, Verdict
from runner.records import JobRecord

pytestmark = pytest.mark.unit


class FakePool:
    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        self.asked: list[list[str]] = []

    async def resolve(self, gateway: Gateway, names: Sequence[str]) -> dict[str, str]:
        self.asked.append(list(names))
        return {n: self.addresses[n] for n in names if n in self.addresses}


def job(node_list: str | None) -> JobRecord:
    details = {"node-list": node_list} if node_list is not None else {}
    return JobRecord(job_id="j1", uid="alice", template_name="t", variables={}, details=details)


async def test_each_rule_is_checked_and_node_names_resolved_once() -> None:
    settings = settings_from_mapping(
        {"keyholed-port-range": {"min": 50000, "max": 50100}, "compute-networks": ["10.1.0.0/24"],
         "forwarding-hostname-suffix": "-ib0"}
    )  # fmt: skip
    pool = FakePool({"vis01-ib0": "10.1.0.5", "vis02-ib0": "10.9.0.6"})
    guard = TargetGuard(settings, pool)  # type: ignore[arg-type]
    gateway = Gateway(runner=None, internal_ip="10.0.0.1", external_ip="192.0.2.1")  # type: ignore[arg-type]
    verdicts = await guard.judge(
        gateway,
        [
            Target(job("vis[01-02]"), "10.1.0.5", 50001),  # the job's node, in range and in the networks
            Target(job("vis[01-02]"), "10.1.0.5", 40000),  # outside the port range
            Target(job("vis[01-02]"), "10.1.0.99", 50002),  # an address that is no node of the job
            Target(job("vis[01-02]"), "10.9.0.6", 50003),  # the job's node, outside the compute networks
            Target(job(None), "10.1.0.5", 50004),  # the job watcher has not seen the job's nodes yet
            Target(None, "10.1.0.5", 50005),  # no such job
        ],
    )
    assert verdicts == [Verdict.OK, Verdict.BAD, Verdict.BAD, Verdict.BAD, Verdict.UNDECIDED, Verdict.UNDECIDED]
    assert pool.asked == [["vis01-ib0", "vis02-ib0"]]
