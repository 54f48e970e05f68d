"""Command-node failover: unreachable nodes are skipped for a while; an ambiguous sbatch is looked up first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.errors import (
    ClusterUnavailable,
    SchedulerError,
    SchedulerUnavailable,
    SubmissionIndeterminate,
)
from runner.slurm.cli import Account
from runner.slurm.cluster import CommandNodes, SlurmCluster
from runner.ssh import CommandOutput
from tests.scripted import ScriptedRunner, answer, indeterminate, unreachable

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_unreachable_node_is_skipped_then_retried_after_the_delay() -> None:
    a = ScriptedRunner("a", [unreachable("refused")])
    b = ScriptedRunner("b")
    clock = Clock()
    nodes = CommandNodes([a, b], down_retry_after=10, clock=clock)
    await nodes.run(["squeue"])
    await nodes.run(["squeue"])
    assert (len(a.calls), len(b.calls)) == (1, 2)
    clock.now = 11
    await nodes.run(["squeue"])
    assert len(a.calls) == 2


async def test_all_nodes_down_is_scheduler_unavailable() -> None:
    a = ScriptedRunner("a", [unreachable("refused")])
    b = ScriptedRunner("b", [unreachable("refused")])
    with pytest.raises(SchedulerUnavailable):
        await CommandNodes([a, b], down_retry_after=10).run(["squeue"])


async def test_indeterminate_sbatch_finds_the_job_instead_of_submitting_twice() -> None:
    row = "77|PENDING|Priority|bwvisu-j1|alice|debug|1||1:00:00|2026-11-28T10:00:00|N/A\n"
    a = ScriptedRunner("a", [indeterminate("dropped")])
    b = ScriptedRunner("b", [answer(row)])
    cluster = SlurmCluster(CommandNodes([a, b], down_retry_after=10))
    assert await cluster.submit("alice", "j1", "/home/alice", "#!/bin/bash\n") == "77"
    assert [c[4] for c in a.calls] == ["sbatch"]
    assert [c[0] for c in b.calls] == ["squeue"]  # looked up, not submitted again


async def test_indeterminate_sbatch_not_found_is_submitted_once_more() -> None:
    a = ScriptedRunner("a", [indeterminate("dropped")])
    b = ScriptedRunner("b", [answer(""), answer("78\n")])
    cluster = SlurmCluster(CommandNodes([a, b], down_retry_after=10))
    assert await cluster.submit("alice", "j2", "/home/alice", "#!/bin/bash\n") == "78"
    assert [c[0] for c in b.calls] == ["squeue", "sudo"]


async def test_a_second_indeterminate_sbatch_is_a_submission_indeterminate() -> None:
    a = ScriptedRunner("a", [indeterminate("dropped")])
    b = ScriptedRunner("b", [answer(""), indeterminate("timed out")])
    cluster = SlurmCluster(CommandNodes([a, b], down_retry_after=10))
    with pytest.raises(SubmissionIndeterminate) as caught:
        await cluster.submit("alice", "j4", "/home/alice", "#!/bin/bash\n")
    assert (caught.value.status, caught.value.code) == (503, "submission-indeterminate")
    assert "timed out" in str(caught.value.internal)  # the context is for the log, not the public answer
    assert "timed out" not in caught.value.public


async def test_unreadable_sbatch_output_is_a_submission_indeterminate() -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer("Submitted batch jab\n")])], down_retry_after=10))
    with pytest.raises(SubmissionIndeterminate) as caught:
        await cluster.submit("alice", "j5", "/home/alice", "#!/bin/bash\n")
    assert "sbatch printed no job id" in str(caught.value.internal)


async def test_sbatch_refusal_is_a_scheduler_error_with_slurms_text() -> None:
    err = "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer(status=1, stderr=err)])], down_retry_after=10))
    with pytest.raises(SchedulerError, match="Invalid partition name specified"):
        await cluster.submit("alice", "j3", "/home/alice", "#!/bin/bash\n")


async def test_controller_down_is_unavailable_not_empty() -> None:
    err = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer(status=1, stderr=err)])], down_retry_after=10))
    with pytest.raises(SchedulerUnavailable):
        await cluster.query(["1"])


async def test_query_of_only_unknown_ids_is_empty() -> None:
    err = "slurm_load_jobs error: Invalid job id specified\n"
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer(status=1, stderr=err)])], down_retry_after=10))
    assert await cluster.query(["1"]) == {}


async def test_ten_thousand_ids_are_one_squeue() -> None:
    node = ScriptedRunner("a")
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10))
    await cluster.query([str(1_000_000 + i) for i in range(10_000)])
    assert len(node.calls) == 1


FIXTURES = Path(__file__).parents[1] / "fixtures" / "slurm"


def captured(name: str) -> CommandOutput:
    """A real Slurm 22.05 answer captured on the container cluster (tests/fixtures/slurm)."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["commands"][name]
    stderr = FIXTURES / f"{name}.stderr.txt"
    return CommandOutput(
        "n",
        (),
        manifest["exit_status"],
        (FIXTURES / f"{name}.txt").read_text(),
        stderr.read_text() if stderr.exists() else "",
    )


async def test_scancel_of_a_job_slurm_no_longer_knows_is_reported_as_such() -> None:
    node = ScriptedRunner("a", [captured("scancel_unknown_verbose")])
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10))
    assert await cluster.cancel("alice", "999999") is False
    assert "--verbose" in node.calls[0]


async def test_scancel_with_the_controller_down_is_unavailable() -> None:
    cluster = SlurmCluster(
        CommandNodes([ScriptedRunner("a", [captured("scancel_controller_down")])], down_retry_after=10)
    )
    with pytest.raises(SchedulerUnavailable):
        await cluster.cancel("alice", "3")


async def test_scancel_refused_is_a_scheduler_error() -> None:
    cluster = SlurmCluster(
        CommandNodes([ScriptedRunner("a", [captured("scancel_other_users_job")])], down_retry_after=10)
    )
    with pytest.raises(SchedulerError, match="Access/permission denied"):
        await cluster.cancel("bob", "2")


@pytest.mark.parametrize("name", ["squeue_controller_down", "squeue_controller_unresponsive"])
async def test_real_squeue_failures_are_unavailable(name: str) -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [captured(name)])], down_retry_after=10))
    with pytest.raises(SchedulerUnavailable):
        await cluster.query(["1"])


async def test_real_squeue_of_an_unknown_id_is_empty() -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [captured("squeue_j_unknown")])], down_retry_after=10))
    assert await cluster.query(["999999"]) == {}


async def test_real_sbatch_with_controller_down_is_unavailable() -> None:
    cluster = SlurmCluster(
        CommandNodes([ScriptedRunner("a", [captured("sbatch_controller_down")])], down_retry_after=10)
    )
    with pytest.raises(SchedulerUnavailable):
        await cluster.submit("alice", "j", "/home/alice", "#!/bin/bash\n")


async def test_user_account_is_one_getent_parsed_from_real_output() -> None:
    node = ScriptedRunner("a", [captured("getent_passwd_alice")])
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10))
    assert await cluster.user_account("alice") == Account("alice", 2001, 2001, "/home/alice", "/bin/bash")
    assert node.calls == [["getent", "passwd", "alice"]]


async def test_user_account_of_an_unknown_name_is_none() -> None:
    cluster = SlurmCluster(
        CommandNodes([ScriptedRunner("a", [captured("getent_passwd_unknown")])], down_retry_after=10)
    )
    assert await cluster.user_account("nosuchuser") is None


async def test_user_account_asks_again_after_an_indeterminate_answer() -> None:
    a = ScriptedRunner("a", [indeterminate("dropped")])
    b = ScriptedRunner("b", [captured("getent_passwd_alice")])
    cluster = SlurmCluster(CommandNodes([a, b], down_retry_after=10))
    account = await cluster.user_account("alice")
    assert account is not None
    assert account.uid == 2001


async def test_user_account_when_getent_fails_otherwise_is_unavailable() -> None:
    node = ScriptedRunner("a", [answer(status=1, stderr="Unknown database: passwd\n")])
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10))
    with pytest.raises(ClusterUnavailable):
        await cluster.user_account("alice")


async def test_with_a_site_helper_only_sbatch_and_scancel_go_through_it() -> None:
    helper = "/usr/local/sbin/bwvisu-slurm-as"
    node = ScriptedRunner("a", [answer("42\n"), answer(), answer(), answer()])
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10), helper)
    assert await cluster.submit("alice", "job1", "/home/alice", "#!/bin/bash\n") == "42"
    await cluster.query(["42"])
    await cluster.accounting(["42"])
    assert await cluster.cancel("alice", "42")
    assert [c[:4] for c in node.calls] == [
        ["sudo", "-n", helper, "alice"],
        ["squeue", "-h", "-t", "all"],
        ["sacct", "-n", "-P", "-X"],
        ["sudo", "-n", helper, "alice"],
    ]
    assert [c[4] for c in node.calls if c[0] == "sudo"] == ["sbatch", "scancel"]


async def test_a_helper_refusal_is_a_scheduler_error_with_its_reason() -> None:
    refusal = "bwvisu-slurm-as: refused: root has uid 0, below min-uid 1000: not an ordinary user\n"
    node = ScriptedRunner("a", [answer(status=77, stderr=refusal)])
    cluster = SlurmCluster(CommandNodes([node], down_retry_after=10), "/usr/local/sbin/bwvisu-slurm-as")
    with pytest.raises(SchedulerError, match="sbatch failed: bwvisu-slurm-as: refused: root has uid 0"):
        await cluster.submit("root", "job1", "/root", "#!/bin/bash\n")


# --- nothing from below the boundary leaks: every outcome is a RunnerError with a stable code -------------


async def test_a_second_indeterminate_scancel_is_scheduler_unavailable() -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [indeterminate(), indeterminate()])], down_retry_after=10))
    with pytest.raises(SchedulerUnavailable) as caught:
        await cluster.cancel("alice", "7")
    assert "connection lost" in (caught.value.internal or "")


async def test_a_second_indeterminate_getent_is_cluster_unavailable() -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [indeterminate(), indeterminate()])], down_retry_after=10))
    with pytest.raises(ClusterUnavailable) as caught:
        await cluster.user_account("alice")
    assert caught.value.code == "cluster-unavailable"
    assert "connection lost" in (caught.value.internal or "")


async def test_unreadable_getent_output_is_cluster_unavailable() -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer("alice:x:1000\n")])], down_retry_after=10))
    with pytest.raises(ClusterUnavailable) as caught:
        await cluster.user_account("alice")
    assert "fields" in (caught.value.internal or "")
    assert "alice:x" not in caught.value.public


@pytest.mark.parametrize(
    "ask",
    [
        lambda c: c.query(["7"]),
        lambda c: c.accounting(["7"]),
        lambda c: c.find_by_names(["bwvisu-x"]),
    ],
    ids=["squeue", "sacct", "squeue-by-name"],
)
async def test_unreadable_squeue_or_sacct_output_is_scheduler_unavailable(ask: Any) -> None:
    cluster = SlurmCluster(CommandNodes([ScriptedRunner("a", [answer("garbage|line\n")])], down_retry_after=10))
    with pytest.raises(SchedulerUnavailable) as caught:
        await ask(cluster)
    assert "fields" in (caught.value.internal or "")
    assert caught.value.public == SchedulerUnavailable.default_public
