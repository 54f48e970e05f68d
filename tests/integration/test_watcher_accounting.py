"""How the watcher ends jobs when accounting lags the controller, as real Slurm 22.05 does for a moment."""

from __future__ import annotations

import aetcd
import pytest

from runner.records import JobRecord, JobState, submitted_as
from runner.slurm.cli import SACCT_FIELDS, SQUEUE_FIELDS
from runner.slurm.cluster import CommandNodes, SlurmCluster
from runner.state import StateStore
from runner.watcher import JobWatcher
from tests.scripted import Answer, Call, ScriptedRunner, answer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SQUEUE_ENDED = {
    "slurm-job-id": "7",
    "slurm-state": "CANCELLED",
    "reason": "None",
    "job-name": "bwvisu-j1",
    "user": "alice",
    "partition": "debug",
    "nodes": "2",
    "node-list": "c[1-2]",
    "time-limit": "15:00",
    "submit-time": "2026-11-28T10:00:00",
    "start-time": "2026-11-28T10:00:01",
}


def acct(state: str, name: str = "allocation", nodes: str = "c1") -> dict[str, str]:
    return {
        "slurm-job-id": "7",
        "slurm-state": state.split(maxsplit=1)[0],
        "end-reason": state,
        "exit-code": "0:15",
        "start-time": "2026-11-28T10:00:01",
        "end-time": "2026-11-28T10:05:00",
        "elapsed": "00:04:59",
        "node-list": nodes,
        "job-name": name,
    }


SACCT_KEYS = {
    "JobID": "slurm-job-id", "JobName": "job-name", "State": "end-reason", "ExitCode": "exit-code",
    "Start": "start-time", "End": "end-time", "Elapsed": "elapsed", "NodeList": "node-list",
}  # fmt: skip


class ScriptedScheduler(SlurmCluster):
    """The runner's :class:`SlurmCluster` over a command node answering squeue and sacct from the test's rows."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}
        self.accounts: dict[str, dict[str, str]] = {}
        node = ScriptedRunner("command1").on("squeue", self._squeue).on("sacct", self._sacct)
        super().__init__(CommandNodes([node], down_retry_after=10))

    @staticmethod
    def _ids(call: Call) -> list[str]:
        return call.argv[call.argv.index("-j") + 1].split(",") if "-j" in call.argv else []  # by name: none

    def _squeue(self, call: Call) -> Answer:
        rows = [self.rows[i] for i in self._ids(call) if i in self.rows]
        return answer("".join("|".join(row[key] for _, key in SQUEUE_FIELDS) + "\n" for row in rows))

    def _sacct(self, call: Call) -> Answer:
        rows = [self.accounts[i] for i in self._ids(call) if i in self.accounts]
        return answer("".join("|".join(row[SACCT_KEYS[f]] for f in SACCT_FIELDS) + "\n" for row in rows))


@pytest.fixture
async def store(etcd_client: aetcd.Client, etcd_prefix: str) -> StateStore:
    store = StateStore(etcd_client, etcd_prefix)
    record = JobRecord(job_id="j1", uid="alice", template_name="t.txt", variables={})
    await store.create_job(record, "tok")
    await store.update_job("j1", submitted_as("7"))
    return store


async def test_lagging_accounting_is_waited_for_while_squeue_lists_the_job(store: StateStore) -> None:
    scheduler = ScriptedScheduler()
    watcher = JobWatcher(store, scheduler, pending_grace=60)
    scheduler.rows["7"] = SQUEUE_ENDED
    scheduler.accounts["7"] = acct("PENDING")
    await watcher.tick()
    assert await store.active_ids() == ["j1"]  # not finished on a stale accounting record
    scheduler.accounts["7"] = acct("CANCELLED by 2001")
    await watcher.tick()
    finished = await store.get_job("j1")
    assert finished is not None
    assert finished.state is JobState.FINISHED
    assert finished.details["slurm-state"] == "CANCELLED"
    assert finished.details["end-reason"] == "CANCELLED by 2001"
    assert finished.details["exit-code"] == "0:15"
    # the controller's name and node list win over accounting's first-moment "allocation" / first node
    assert finished.details["job-name"] == "bwvisu-j1"
    assert finished.details["node-list"] == "c[1-2]"


async def test_without_accounting_the_controllers_end_state_finishes_the_job(store: StateStore) -> None:
    scheduler = ScriptedScheduler()
    scheduler.rows["7"] = SQUEUE_ENDED
    await JobWatcher(store, scheduler, pending_grace=60).tick()
    finished = await store.get_job("j1")
    assert finished is not None
    assert finished.state is JobState.FINISHED
    assert finished.details["slurm-state"] == "CANCELLED"


async def test_a_job_gone_from_squeue_takes_its_end_from_accounting(store: StateStore) -> None:
    scheduler = ScriptedScheduler()
    scheduler.accounts["7"] = acct("TIMEOUT", name="bwvisu-j1", nodes="c[1-2]")
    await JobWatcher(store, scheduler, pending_grace=60).tick()
    finished = await store.get_job("j1")
    assert finished is not None
    assert finished.details["slurm-state"] == "TIMEOUT"
    assert finished.details["exit-code"] == "0:15"
