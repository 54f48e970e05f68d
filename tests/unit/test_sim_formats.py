"""Pure parsers and formatters of the simulator: hostlists, Slurm times, squeue/sacct/scontrol layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import hostlist
from simulator.behaviours import find_behaviour
from simulator.cliparse import getopt_message
from simulator.config import ClusterConfig, NodeConfig, Role, UserConfig, assign_addresses
from simulator.faults import FaultKind, Faults
from simulator.jobs import Job, JobSpec, JobState
from simulator.sacct import Row, _cell, _reason, _timelimit
from simulator.sbatch import directives, parse_memory
from simulator.scheduler import expand_pattern
from simulator.scontrol import show_job
from simulator.slurmtime import TimeFormatError, clock_secs, parse_time_limit, squeue_limit, squeue_secs
from simulator.squeue import DEFAULT_FORMAT, FormatError, parse_format, parse_format_long, render
from simulator.squeue_json import dumps_json_c, job_entry
from simulator.sudo import AnyCommand, SudoError, unwrap_sudo
from simulator.users import UserDB

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["sim-c001", "sim-c002", "sim-c003"], "sim-c[001-003]"),
        (["sim-c001"], "sim-c001"),
        (["sim-c001", "sim-c003", "sim-c004", "gw1"], "sim-c[001,003-004],gw1"),
        (["login"], "login"),
    ],
)
def test_hostlist_compress_and_expand_round_trip(names: list[str], expected: str) -> None:
    assert hostlist.compress(names) == expected
    assert sorted(hostlist.expand(expected)) == sorted(names)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("15", 15),
        ("0:30", 1),
        ("1:00", 1),
        ("2:30:00", 150),
        ("1-0", 1440),
        ("1-2:03", 1563),
        ("1-2:03:04", 1564),
        ("UNLIMITED", None),
        ("infinite", None),
        ("-1", None),
        ("0", None),
    ],
)
def test_time_limit_parsing_follows_slurm(text: str, minutes: int | None) -> None:
    assert parse_time_limit(text) == minutes


@pytest.mark.parametrize("text", ["abc", "1:2:3:4", "", "5m"])
def test_invalid_time_limits_are_rejected(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_time_limit(text)


def test_duration_styles() -> None:
    assert squeue_secs(5) == "0:05"
    assert squeue_secs(3725) == "1:02:05"
    assert squeue_secs(90061) == "1-01:01:01"
    assert squeue_limit(15) == "15:00"
    assert squeue_limit(None) == "UNLIMITED"
    assert clock_secs(5) == "00:00:05"
    assert clock_secs(90061) == "1-01:01:01"


def _job(job_id: int = 7, state: JobState = JobState.RUNNING, name: str = "sbatch") -> Job:
    spec = JobSpec(script="#!/bin/sh\n", user="alice", uid=1001, gid=1001, name=name, work_dir="/h/alice")
    job = Job(job_id, spec, "sim", 1, 1, 15, "/h/alice/slurm-7.out", "/h/alice/slurm-7.out", 100)
    job.state = state
    if state is not JobState.PENDING:
        job.nodes = ["sim-c001", "sim-c002"]
        job.start_time = job.submit_time
    else:
        job.reason = "Resources"
    return job


def test_squeue_default_layout_pads_and_cuts_like_slurm() -> None:
    out = render([_job(name="a-very-long-name")], parse_format(DEFAULT_FORMAT), True, _job().submit_time)
    header, line = out.splitlines()
    assert header == "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    assert line == "                 7       sim a-very-l    alice  R       0:00      2 sim-c[001-002]"


def test_squeue_pending_reason_and_unpadded_fields() -> None:
    out = render([_job(state=JobState.PENDING)], parse_format("%i|%T|%R|%D|%l"), False, 0.0)
    assert out == "7|PENDING|(Resources)|1|15:00\n"


def test_squeue_long_format_names() -> None:
    out = render([_job()], parse_format_long("JobID:.6,State:10,NodeList"), True, 0.0)
    header, line = out.splitlines()
    assert header == " JOBIDSTATE     NODELIST            "
    assert line == "     7RUNNING   sim-c[001-002]      "


def test_sacct_marks_cut_values_with_plus() -> None:
    assert _cell("CANCELLED by 1001", 10) == "CANCELLED+"
    assert _cell("7", -12) == "7           "
    assert _cell("0:0", 8) == "     0:0"
    assert _cell("2026-12-03T13:00:00", 5, plain=True) == "2026-"  # times are cut without the mark


def test_scontrol_show_job_layout() -> None:
    job = _job()
    job.spec.comment = "runner"
    lines = show_job(job, {1001: "alice"}, job.submit_time)
    assert lines[0] == "JobId=7 JobName=sbatch"
    assert lines[1] == "   UserId=alice(1001) GroupId=alice(1001) MCS_label=N/A"
    assert "   JobState=RUNNING Reason=None Dependency=(null)" in lines
    assert "   NodeList=sim-c[001-002]" in lines
    assert "   BatchHost=sim-c001" in lines
    assert any(line.startswith("   RunTime=00:00:00 TimeLimit=00:15:00") for line in lines)
    assert "   StdOut=/h/alice/slurm-7.out" in lines


def test_directives_stop_at_first_command() -> None:
    script = "#!/bin/bash\n#SBATCH -N 2\n# plain comment\n#SBATCH --job-name=x # trailing\necho hi\n#SBATCH -t 5\n"
    assert directives(script) == ["-N", "2", "--job-name=x"]


def test_output_patterns() -> None:
    spec = JobSpec(script="", user="alice", uid=1, gid=1, name="viz", work_dir="/h/alice")
    assert expand_pattern("bwvisu-job-%j.out", 42, spec) == "/h/alice/bwvisu-job-42.out"
    assert expand_pattern("/logs/%u/%x-%j.%%", 42, spec) == "/logs/alice/viz-42.%"


def test_sudo_unwrapping() -> None:
    users = UserDB.build([("alice", 1001, 1001)], ("bwvisu", 990), __import__("pathlib").Path("/h"))
    anything = AnyCommand(frozenset({"bwvisu"}))
    assert unwrap_sudo(["sudo", "-n", "-u", "alice", "squeue"], "bwvisu", users, anything) == (["squeue"], "alice")
    assert unwrap_sudo(["sudo", "-n", "iptables", "-S"], "bwvisu", users, anything) == (["iptables", "-S"], "root")
    assert unwrap_sudo(["squeue"], "bwvisu", users, anything) == (["squeue"], "bwvisu")
    with pytest.raises(SudoError) as unknown:
        unwrap_sudo(["sudo", "-n", "-u", "mallory", "id"], "bwvisu", users, anything)
    assert unknown.value.result.stderr.startswith("sudo: unknown user mallory\n")
    with pytest.raises(SudoError) as denied:
        unwrap_sudo(["sudo", "-n", "-u", "alice", "id"], "alice", users, anything)
    assert denied.value.result.stderr == "sudo: a password is required\n"


@pytest.mark.parametrize("name", ["bwvisu", "root", "daemon", "nobody"])
def test_configured_users_cannot_shadow_the_built_in_accounts(name: str) -> None:
    with pytest.raises(ValueError, match="differ from the service user, root and system accounts"):
        ClusterConfig.build(users=[UserConfig(name=name, uid=5000)])


def test_behaviour_marker_selects_behaviour() -> None:
    found = find_behaviour("#!/bin/sh\n#SIM-BEHAVIOUR listen port=5901 after=0.5\n")
    assert found is not None
    assert found[1] == {"port": "5901", "after": "0.5"}
    assert find_behaviour("#!/bin/sh\necho hi\n") is None


def test_config_validation_and_addresses() -> None:
    config = ClusterConfig.build(command=1, compute=3, gateways=1, address_prefix="127.77")
    addresses = assign_addresses(config)
    assert addresses["sim-login1"] == ("127.77.0.1", None)
    assert addresses["sim-gw1"] == ("127.77.0.5", "127.77.200.5")
    with pytest.raises(ValueError, match="command node"):
        ClusterConfig(nodes=[NodeConfig(name="c", roles={Role.COMPUTE})])


def test_faults_trigger_at_the_nth_call_only() -> None:
    faults = Faults()
    faults.fail_command("sbatch", at_call=2)
    assert faults.next_call("sbatch", "n")[1] is None
    second = faults.next_call("sbatch", "n")[1]
    assert second is not None
    assert second.kind is FaultKind.FAIL
    assert "Batch job submission failed" in second.failure_text
    assert faults.next_call("sbatch", "n")[1] is None


@pytest.mark.parametrize(
    ("argparse_says", "getopt_says"),
    [
        ("unrecognized arguments: --bogus-option", "unrecognized option '--bogus-option'"),
        ("unrecognized arguments: --bogus=1 x", "unrecognized option '--bogus'"),
        ("unrecognized arguments: -Z", "invalid option -- 'Z'"),
        ("argument -t: expected one argument", "argument -t: expected one argument"),
    ],
)
def test_unknown_options_are_reported_in_getopts_words(argparse_says: str, getopt_says: str) -> None:
    assert getopt_message(argparse_says) == getopt_says


def test_squeue_unknown_long_field_is_collected_and_left_out() -> None:
    unknown: list[str] = []
    columns = parse_format_long("JobID:|,NoSuchField,State:", unknown)
    assert unknown == ["NoSuchField"]
    assert render([_job()], columns, False, 0.0) == "7|RUNNING\n"
    with pytest.raises(FormatError):
        parse_format_long("NoSuchField")


def test_squeue_never_cuts_a_node_list_but_cuts_a_reason() -> None:
    assert render([_job()], parse_format_long("NodeList:.9"), False, 0.0) == "sim-c[001-002]\n"
    assert render([_job()], parse_format("%.5R"), False, 0.0) == "sim-c[001-002]\n"
    pending = _job(state=JobState.PENDING)
    assert render([pending], parse_format("%.5R"), False, 0.0) == "(Reso\n"


def test_squeue_group_id_title_is_group() -> None:
    assert render([_job()], parse_format("%G"), True, 0.0).splitlines()[0] == "GROUP"


def test_unlimited_running_job_has_no_planned_end() -> None:
    job = _job()
    job.time_limit = None
    assert job.expected_end is None
    assert render([job, _job(state=JobState.PENDING)], parse_format("%e"), False, 0.0) == "NONE\nN/A\n"


def test_sacct_timelimit_of_a_pending_job_without_one_is_the_partitions() -> None:
    pending = _job(state=JobState.PENDING)
    pending.time_limit = None
    assert _timelimit(pending) == "Partition_Limit"
    ended = _job(state=JobState.COMPLETED)
    ended.time_limit = None
    assert _timelimit(ended) == "UNLIMITED"


def test_root_passwd_line_has_its_comment() -> None:
    root = UserDB.build([], ("bwvisu", 990), Path("/h")).by_uid(0)
    assert root is not None
    assert root.passwd_line() == "root:x:0:0:root:/root:/bin/bash"


def test_pending_job_shows_its_requested_memory_a_started_one_its_allocation() -> None:
    """As the testbed's Slurm 22.05 (CR_CPU: memory is requested, never allocated): whole nodes without --mem."""
    pending, running = _job(state=JobState.PENDING), _job()
    assert pending.tres() == "cpu=1,mem=4000M,node=1,billing=1"
    assert running.tres() == "cpu=2,node=2,billing=2"
    pending.spec.mem_per_cpu_mb = 50
    assert pending.tres() == "cpu=1,mem=50M,node=1,billing=1"
    assert pending.min_memory == "50M"
    assert "   MinCPUsNode=1 MinMemoryCPU=50M MinTmpDiskNode=0" in show_job(pending, {}, 0.0)
    assert _job().min_memory == "0"


def test_job_cancelled_before_it_started_has_no_task_count() -> None:
    job = _job(state=JobState.PENDING)
    job.state = JobState.CANCELLED
    assert job.num_tasks_shown == "4294967294"
    assert any("NumTasks=N/A" in line for line in show_job(job, {}, 0.0))
    assert _job(state=JobState.COMPLETED).num_tasks_shown == "1"


@pytest.mark.parametrize(("text", "mb"), [("100", 100), ("100M", 100), ("2G", 2048), ("2048K", 2)])
def test_memory_sizes_read_as_slurm_does(text: str, mb: int) -> None:
    assert parse_memory(text) == mb


def test_invalid_memory_size_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid memory constraint 10X"):
        parse_memory("10X")


def test_job_past_its_limit_has_invalid_time_left() -> None:
    job = _job(state=JobState.TIMEOUT)
    job.end_time = job.submit_time + 15 * 60 + 2  # the limit, then KillWait
    assert render([job], parse_format("%L"), False, job.end_time) == "INVALID\n"


def test_time_left_counts_down_the_limit_at_the_clusters_pace() -> None:
    job = _job()
    job.time_limit, job.minute_seconds = 1, 3.0  # a minute of the limit lasts 3 s
    assert job.start_time is not None
    assert render([job], parse_format("%l|%L"), False, job.start_time + 1.5) == "1:00|0:30\n"
    job.state, job.end_time = JobState.TIMEOUT, job.start_time + 3.05
    assert render([job], parse_format("%L"), False, job.end_time + 10) == "INVALID\n"


def test_timed_out_job_shows_the_scripts_signal_and_accounting_no_reason() -> None:
    job = _job(state=JobState.TIMEOUT)
    job.reason, job.batch_state, job.batch_signal = "TimeLimit", JobState.CANCELLED, 15
    lines = show_job(job, {}, 0.0)
    assert any(line.endswith(" ExitCode=0:15") for line in lines)
    assert any("JobState=TIMEOUT Reason=TimeLimit " in line for line in lines)
    assert _reason(Row(job, None), 0.0) == "None"  # slurmdbd keeps the reason of the job's last update
    assert Row(job, None).exit_code() == "0:0"


def test_node_failed_job_in_accounting_keeps_no_step_exit_code_and_no_reason() -> None:
    job = _job(state=JobState.NODE_FAIL)
    job.reason, job.batch_state = "NodeDown", JobState.CANCELLED
    assert [_reason(Row(job, None), 0.0), _reason(Row(job, "batch"), 0.0)] == ["None", ""]
    assert Row(job, "batch").exit_code() == ""
    assert Row(job, "batch").state() == "CANCELLED"


def test_json_dump_is_laid_out_as_json_c_prints_it() -> None:
    text = dumps_json_c({"a": [], "b": {"c": "/dev/null", "d": 1.0, "e": None, "f": [True]}})
    assert text == (
        '{\n  "a": [\n  ],\n  "b": {\n    "c": "\\/dev\\/null",\n    "d": 1.0,\n    "e": null,\n'
        '    "f": [\n      true\n    ]\n  }\n}'
    )


def test_json_dump_of_a_job_as_slurmctld_reports_it() -> None:
    running = job_entry(_job(), "bwvisu", "alice")
    assert (running["flags"], running["time_limit"], running["cpus"], running["billable_tres"]) == (
        ["JOB_WAS_RUNNING"], 15, 2, 2.0,
    )  # fmt: skip
    assert running["job_resources"]["allocated_hosts"] == 2  # type: ignore[index,call-overload]
    ended = _job(state=JobState.CANCELLED)
    ended.nodes, ended.spec.mem_per_node_mb, ended.time_limit = [], 100, None
    entry = job_entry(ended, "bwvisu", "alice")
    assert (entry["flags"], entry["time_limit"], entry["cpus"], entry["tasks"]) == (["JOB_MEM_SET"], None, None, None)
    assert "job_resources" not in entry
