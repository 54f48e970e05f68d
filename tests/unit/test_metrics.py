"""The runner's metrics and readiness logic: bounded labels, outcomes, per-runner registries, missing components."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.api.ops import missing_components
from runner.errors import NoSuchJob, StateUnavailable
from runner.metrics import RunnerMetrics, slurm_command
from runner.records import JobState
from runner.slurm import cli as slurm

pytestmark = pytest.mark.unit


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (slurm.sbatch_argv("alice", "j1", "/home/alice"), "sbatch"),
        (slurm.sbatch_argv("alice", "j1", "/home/alice", helper="/usr/local/sbin/bwvisu-slurm-as"), "sbatch"),
        (slurm.scancel_argv("alice", "17"), "scancel"),
        (slurm.squeue_argv(["1", "2"]), "squeue"),
        (slurm.sacct_argv(["1"]), "sacct"),
        (slurm.getent_argv("alice"), "getent"),
        (["true"], "other"),
        ([], "other"),
    ],
)
def test_slurm_commands_are_named_past_sudo_and_helpers(argv: list[str], command: str) -> None:
    assert slurm_command(argv) == command


async def test_submissions_are_counted_by_outcome_and_only_accepted_ones_timed() -> None:
    metrics = RunnerMetrics()
    with metrics.submission():
        pass
    with pytest.raises(NoSuchJob), metrics.submission():
        raise NoSuchJob
    with pytest.raises(StateUnavailable), metrics.submission():
        raise StateUnavailable
    with pytest.raises(ValueError, match="a bug"), metrics.submission():
        raise ValueError("a bug")
    got = samples(await metrics.render())
    assert got[("bwvisu_runner_submissions_total", (("outcome", "ok"),))] == 1
    assert got[("bwvisu_runner_submissions_total", (("outcome", "refused"),))] == 1
    assert got[("bwvisu_runner_submissions_total", (("outcome", "failed"),))] == 2
    assert got[("bwvisu_runner_submit_seconds_count", ())] == 1


async def test_jobs_by_state_are_read_at_scrape_and_left_out_when_etcd_fails() -> None:
    metrics = RunnerMetrics()
    states = [JobState.RUNNING, JobState.RUNNING, JobState.SUBMITTED]

    async def active() -> list[JobState]:
        return states

    metrics.sources.active_jobs = active
    got = samples(await metrics.render())
    assert got[("bwvisu_runner_jobs", (("state", "running"),))] == 2
    assert got[("bwvisu_runner_jobs", (("state", "submitted"),))] == 1
    assert got[("bwvisu_runner_jobs", (("state", "available"),))] == 0
    assert ("bwvisu_runner_jobs", (("state", "finished"),)) not in got

    async def failing() -> list[JobState]:
        raise StateUnavailable

    metrics.sources.active_jobs = failing
    assert not [key for key in samples(await metrics.render()) if key[0] == "bwvisu_runner_jobs"]


async def test_each_runner_has_its_own_registry() -> None:
    first, second = RunnerMetrics(), RunnerMetrics()
    first.slurm_call(["squeue"])
    first.keyhole_request(None)
    assert samples(await first.render())[("bwvisu_runner_slurm_calls_total", (("command", "squeue"),))] == 1
    other = samples(await second.render())
    assert ("bwvisu_runner_slurm_calls_total", (("command", "squeue"),)) not in other
    assert other[("bwvisu_runner_keyhole_requests_total", (("outcome", "ok"),))] == 0


@dataclass
class FakeLeader:
    is_leader: bool = False
    holds: str | None = "other-runner"
    etcd_down: bool = False

    async def holder(self) -> str | None:
        if self.etcd_down:
            raise OSError("connection refused")
        return self.holds


@dataclass
class Up:
    count: int = 1

    def up(self) -> int:
        return self.count


async def test_ready_when_another_runner_leads_and_one_of_each_is_up() -> None:
    assert await missing_components(FakeLeader(), Up(), Up()) == []


async def test_every_missing_component_is_named_in_order() -> None:
    assert await missing_components(FakeLeader(holds=None), Up(0), Up(0)) == ["leader", "command-nodes", "gateways"]
    assert await missing_components(FakeLeader(etcd_down=True), Up(), Up()) == ["etcd", "leader"]
    assert await missing_components(FakeLeader(etcd_down=True, is_leader=True), Up(), Up()) == ["etcd"]
