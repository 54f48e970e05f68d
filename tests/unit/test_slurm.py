"""Slurm command builders and parsers, on the exact text Slurm 22.05 prints."""

from pathlib import Path

import pytest

from runner.errors import SlurmParseError
from runner.records import JobState
from runner.slurm import cli as slurm

pytestmark = pytest.mark.unit


def test_sbatch_runs_as_the_user_in_their_directory_with_bwvisu_log_name() -> None:
    argv = slurm.sbatch_argv("alice", "abc123", "/home/alice")
    assert argv[:4] == ["sudo", "-n", "-u", "alice"]
    assert argv[4:6] == ["sbatch", "--parsable"]
    assert "--job-name=bwvisu-abc123" in argv
    assert "--comment=bwvisu-abc123" in argv
    assert "--chdir=/home/alice" in argv
    assert "--output=/home/alice/bwvisu-job-%j.out" in argv


def test_with_a_site_helper_the_user_is_its_first_argument_and_nothing_else_changes() -> None:
    helper = "/usr/local/sbin/bwvisu-slurm-as"
    plain = slurm.sbatch_argv("alice", "abc123", "/home/alice")
    assert slurm.sbatch_argv("alice", "abc123", "/home/alice", helper) == ["sudo", "-n", helper, "alice", *plain[4:]]
    assert slurm.scancel_argv("alice", "42") == ["sudo", "-n", "-u", "alice", "scancel", "--verbose", "42"]
    assert slurm.scancel_argv("alice", "42", helper) == ["sudo", "-n", helper, "alice", "scancel", "--verbose", "42"]
    # squeue and sacct run as the runner's own account either way: no sudo
    assert slurm.squeue_argv(["1"])[0] == "squeue"
    assert slurm.sacct_argv(["1"])[0] == "sacct"


@pytest.mark.parametrize(("out", "job_id"), [("42\n", "42"), ("1234;cluster\n", "1234"), ("\n7\n", "7")])
def test_parse_sbatch(out: str, job_id: str) -> None:
    assert slurm.parse_sbatch(out) == job_id


@pytest.mark.parametrize("out", ["", "Submitted batch job\n", "abc\n"])
def test_parse_sbatch_rejects_output_without_id(out: str) -> None:
    with pytest.raises(SlurmParseError):
        slurm.parse_sbatch(out)


def test_squeue_is_one_call_for_all_ids_including_ended_jobs() -> None:
    argv = slurm.squeue_argv(["1", "2", "3"])
    assert argv[:5] == ["squeue", "-h", "-t", "all", "-j"]
    assert argv[5] == "1,2,3"
    assert argv[-2:] == ["-o", slurm.SQUEUE_FORMAT]


def test_parse_squeue_rows() -> None:
    out = (
        "17|RUNNING|None|bwvisu-a|alice|debug|2|c[01-02]|1:00:00|2026-11-28T10:00:00|2026-11-28T10:00:01\n"
        "18|PENDING|Resources|bwvisu-b|bob|debug|1||15:00|2026-11-28T10:00:02|N/A\n"
    )
    rows = slurm.parse_squeue(out)
    assert rows["17"]["slurm-state"] == "RUNNING"
    assert rows["17"]["node-list"] == "c[01-02]"
    assert rows["18"]["reason"] == "Resources"
    assert rows["18"]["node-list"] == ""


def test_parse_squeue_strips_padded_values_and_keeps_inner_spaces() -> None:
    out = (
        "19 |RUNNING| (ReqNodeNotAvail, Reserved) |bwvisu-c|alice|debug|1|c01\t|1:00:00|2026-11-28T10:00:00|N/A\r\n"
        "20|RUNNING|None|bwvisu-d|alice|debug|1|c02|1:00:00|2026-11-28T10:00:00|N/A\n"
    )
    rows = slurm.parse_squeue(out)
    assert set(rows) == {"19", "20"}
    assert rows["19"]["reason"] == "(ReqNodeNotAvail, Reserved)"
    assert rows["19"]["node-list"] == "c01"
    assert rows["19"]["start-time"] == "N/A"
    assert rows["20"]["start-time"] == "N/A"


def test_parse_squeue_rejects_wrong_field_count() -> None:
    with pytest.raises(SlurmParseError):
        slurm.parse_squeue("17|RUNNING\n")


def test_invalid_job_id_is_an_answer_not_a_failure() -> None:
    assert slurm.squeue_missing_ids(1, "slurm_load_jobs error: Invalid job id specified\n")
    assert not slurm.squeue_missing_ids(
        1, "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
    )


def test_parse_sacct_cuts_cancelled_by() -> None:
    out = (
        "17|bwvisu-a|CANCELLED by 1000|0:15|2026-11-28T10:00:01|2026-11-28T10:05:00|00:04:59|c01\n"
        "18|bwvisu-b|COMPLETED|0:0|2026-11-28T10:00:01|2026-11-28T10:01:00|00:00:59|c02\n"
    )
    rows = slurm.parse_sacct(out)
    assert rows["17"]["slurm-state"] == "CANCELLED"
    assert rows["17"]["end-reason"] == "CANCELLED by 1000"
    assert rows["18"]["exit-code"] == "0:0"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PENDING", JobState.SUBMITTED),
        ("CONFIGURING", JobState.SUBMITTED),
        ("RUNNING", JobState.RUNNING),
        ("SUSPENDED", JobState.RUNNING),
        ("COMPLETING", JobState.COMPLETING),
        ("COMPLETED", JobState.FINISHED),
        ("CANCELLED", JobState.FINISHED),
        ("CANCELLED+", JobState.FINISHED),
        ("TIMEOUT", JobState.FINISHED),
        ("NODE_FAIL", JobState.FINISHED),
        ("FAILED", JobState.FINISHED),
        ("OUT_OF_MEMORY", JobState.FINISHED),
    ],
)
def test_bwvisu_state(state: str, expected: JobState) -> None:
    assert slurm.bwvisu_state(state) is expected


def test_error_text_picks_the_error_line() -> None:
    stderr = (
        "sbatch: warning: something\nsbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    assert slurm.SlurmErrorText.from_stderr(stderr).text.endswith("Invalid partition name specified")


FIXTURES = Path(__file__).parents[1] / "fixtures" / "slurm"


def test_getent_passwd_of_a_real_account() -> None:
    stdout = (FIXTURES / "getent_passwd_alice.txt").read_text()
    assert slurm.parse_getent_passwd(stdout, "alice") == slurm.Account("alice", 2001, 2001, "/home/alice", "/bin/bash")


def test_getent_passwd_of_an_unknown_name_is_none() -> None:
    assert slurm.parse_getent_passwd((FIXTURES / "getent_passwd_unknown.txt").read_text(), "nosuchuser") is None


@pytest.mark.parametrize(
    ("name", "stdout"),
    [
        ("daemon", "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"),
        ("nobody", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"),
        ("root", "root:x:0:0:root:/root:/bin/bash\n"),
    ],
)
def test_getent_passwd_keeps_the_uid_of_system_accounts(name: str, stdout: str) -> None:
    account = slurm.parse_getent_passwd(stdout, name)
    assert account is not None
    assert (account.name, account.uid) == (name, int(stdout.split(":")[2]))


@pytest.mark.parametrize(
    "stdout",
    [
        "alice:x:2001:2001::/home/alice\n",  # six fields
        "alice:x:2001:2001::/home/alice:/bin/bash:extra\n",
        "alice:x:two:2001::/home/alice:/bin/bash\n",
        "alice:x:-1:2001::/home/alice:/bin/bash\n",
        "alice:x:2001:gid::/home/alice:/bin/bash\n",
        "bob:x:2002:2002::/home/bob:/bin/bash\n",  # not the account asked for
        "alice:x:2001:2001::/home/alice:/bin/bash\nalice:x:0:0::/root:/bin/bash\n",  # two answers
        "getent: something odd\n",
    ],
)
def test_getent_passwd_rejects_anything_but_one_entry_for_the_name(stdout: str) -> None:
    with pytest.raises(SlurmParseError):
        slurm.parse_getent_passwd(stdout, "alice")
