"""Where a forward may point: Slurm's node list for a RUNNING job, from the watcher's row or one squeue."""

from __future__ import annotations

import ipaddress

import pytest

from runner.errors import HostsNotAllocated, JobNotRunning, TargetOutsideNetworks
from runner.keyhole.allocation import Allocation, check_requested_hosts, check_targets, confirmed_allocation
from runner.records import JobRecord, submitted_as
from runner.watcher import observed

pytestmark = pytest.mark.unit


def row(
    state: str = "RUNNING", nodes: str = "vis[01-02]", name: str = "bwvisu-j1", user: str = "alice"
) -> dict[str, str]:
    return {
        "slurm-job-id": "77",
        "slurm-state": state,
        "job-name": name,
        "user": user,
        "nodes": "2",
        "node-list": nodes,
    }


class FakeSlurm:
    def __init__(self, rows: dict[str, dict[str, str]]) -> None:
        self.rows = rows
        self.asked: list[list[str]] = []

    async def query(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]:
        self.asked.append(slurm_ids)
        return {i: self.rows[i] for i in slurm_ids if i in self.rows}


def record(seen: dict[str, str] | None = None) -> JobRecord:
    job = JobRecord(job_id="j1", uid="alice", template_name="t.txt", variables={})
    job = submitted_as("77")(job) or job
    return (observed(seen)(job) or job) if seen is not None else job


async def test_the_watchers_running_row_is_used_without_asking_slurm() -> None:
    fake = FakeSlurm({})
    got = await confirmed_allocation(record(row()), fake)
    assert got == Allocation("77", ("vis01", "vis02"), asked_slurm=False)
    assert fake.asked == []


@pytest.mark.parametrize("seen", [None, row("PENDING", nodes="")])
async def test_a_job_the_watcher_has_not_seen_running_is_looked_up_alone(seen: dict[str, str] | None) -> None:
    fake = FakeSlurm({"77": row()})
    got = await confirmed_allocation(record(seen), fake)
    assert got == Allocation("77", ("vis01", "vis02"), asked_slurm=True)
    assert fake.asked == [["77"]]


@pytest.mark.parametrize(
    ("slurm_row", "text"),
    [
        (None, "(gone)"),
        (row("PENDING", nodes=""), "(PENDING)"),
        (row("SUSPENDED"), "(SUSPENDED)"),
        (row("COMPLETING"), "(COMPLETING)"),
        (row(name="bwvisu-someone-else"), "(RUNNING)"),
        (row(name="interactive"), "(RUNNING)"),
        (row(user="bob"), "(RUNNING)"),
        (row(nodes="vis[01"), "(RUNNING)"),
    ],
)
async def test_anything_but_this_runner_job_running_is_refused(slurm_row: dict[str, str] | None, text: str) -> None:
    fake = FakeSlurm({"77": slurm_row} if slurm_row is not None else {})
    with pytest.raises(JobNotRunning) as refused:
        await confirmed_allocation(record(), fake)
    assert refused.value.public == f"Slurm does not report the job as RUNNING {text}"


async def test_a_record_without_a_slurm_id_is_not_running_yet() -> None:
    job = JobRecord(job_id="j1", uid="alice", template_name="t.txt", variables={})
    with pytest.raises(JobNotRunning, match="not running yet"):
        await confirmed_allocation(job, FakeSlurm({}))


def test_requested_hosts_must_be_the_jobs_own_and_no_more() -> None:
    allocation = Allocation("77", ("vis01", "vis02"), asked_slurm=False)
    check_requested_hosts(["vis02", "vis01"], allocation)
    check_requested_hosts(["vis01"], allocation)
    with pytest.raises(HostsNotAllocated, match="not nodes of this job: login1"):
        check_requested_hosts(["vis01", "login1"], allocation)
    with pytest.raises(HostsNotAllocated, match="names 3 hosts; the job has 2 node"):
        check_requested_hosts(["vis01", "vis02", "vis03"], allocation)


def test_targets_must_lie_in_the_compute_networks_when_any_are_set() -> None:
    nets = [ipaddress.IPv4Network("10.1.0.0/16"), ipaddress.IPv4Network("10.2.0.0/24")]
    check_targets({"vis01": "10.1.4.5", "vis02": "10.2.0.9"}, nets)
    check_targets({"vis01": "192.0.2.1"}, [])
    with pytest.raises(TargetOutsideNetworks, match=r"vis02 \(10.2.1.9\)"):
        check_targets({"vis01": "10.1.4.5", "vis02": "10.2.1.9"}, nets)
    with pytest.raises(TargetOutsideNetworks):
        check_targets({"vis01": "not-an-address"}, nets)
