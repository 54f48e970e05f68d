"""The testbed at scale: several Slurm nodes per container (layout, slurm.conf, command), sdiag, listener answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from containers.scale import LISTENER_TEMPLATE, TEMPLATES, expected_answer, parse_sdiag
from containers.slurmconf import SLURMD_PORT, compute_hosts, render_slurm_conf
from containers.testbed import EPHEMERAL_BELOW_RANGE, PORT_MIN, TestbedSpec, multi_slurmd_command

pytestmark = pytest.mark.unit


def test_one_node_per_host_keeps_the_container_named_after_its_node() -> None:
    assert compute_hosts(3) == {"compute1": ["compute1"], "compute2": ["compute2"], "compute3": ["compute3"]}
    conf = render_slurm_conf(3)
    assert "NodeName=compute[1-3] CPUs=" in conf
    assert "SlurmdSpoolDir=/var/lib/slurm/slurmd\n" in conf
    assert "NodeHostname" not in conf
    assert "LLN" not in conf


def test_several_nodes_per_host_each_with_its_own_port_and_files() -> None:
    assert compute_hosts(5, 2) == {
        "computehost1": ["compute1", "compute2"],
        "computehost2": ["compute3", "compute4"],
        "computehost3": ["compute5"],
    }
    conf = render_slurm_conf(5, per_host=2)
    lines = [line for line in conf.splitlines() if line.startswith("NodeName=")]
    assert len(lines) == 5
    assert lines[1].startswith(f"NodeName=compute2 NodeHostname=computehost1 Port={SLURMD_PORT + 1} ")
    assert lines[2].startswith(f"NodeName=compute3 NodeHostname=computehost2 Port={SLURMD_PORT} ")
    # Daemons sharing a host must not share a spool folder, pid file or log.
    assert "SlurmdSpoolDir=/var/lib/slurm/slurmd/%n\n" in conf
    assert "SlurmdPidFile=/run/slurmd-%n.pid\n" in conf
    assert "SlurmdLogFile=/var/log/slurm/slurmd-%n.log\n" in conf
    # Jobs spread over all nodes (least loaded first) rather than filling the first ones.
    assert "PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP LLN=YES\n" in conf


def test_the_host_command_starts_one_slurmd_per_node_name() -> None:
    argv = multi_slurmd_command(["compute1", "compute2"])
    assert argv[:2] == ["bash", "-c"]
    assert argv[3:] == ["compute-host", "compute1", "compute2"]
    assert 'slurmd -N "$name"' in argv[2]
    assert "testbed-init.sh" in argv[2]


def test_bad_layouts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one slurmd"):
        compute_hosts(4, 0)
    with pytest.raises(ValueError, match="at least one slurmd"):
        TestbedSpec(slurmd_per_host=0)


def test_sdiag_counts_are_read_by_message_type_and_not_by_user() -> None:
    # Captured from slurmctld 22.05 of a scale testbed (tests/fixtures/scale/sdiag.txt), right after the rate runs.
    text = (Path(__file__).parents[1] / "fixtures" / "scale" / "sdiag.txt").read_text()
    counts = parse_sdiag(text)
    assert counts["REQUEST_SUBMIT_BATCH_JOB"] == 264
    assert counts["REQUEST_COMPLETE_BATCH_SCRIPT"] == 244
    assert counts["MESSAGE_NODE_REGISTRATION_STATUS"] == 150
    assert "root" not in counts
    assert "alice" not in counts
    assert parse_sdiag("no statistics here\n") == {}


def test_a_listener_answers_with_its_job_names_so_forwards_can_be_told_apart() -> None:
    assert expected_answer("abc123", "42") == "bwvisu-abc123 42"
    assert "#KEYHOLE-REQUEST-PORTS 1" in TEMPLATES[LISTENER_TEMPLATE]
    assert 'os.environ["SLURM_JOB_NAME"], os.environ["SLURM_JOB_ID"]' in TEMPLATES[LISTENER_TEMPLATE]


def test_compute_hosts_keep_outgoing_ports_out_of_the_forwarding_range() -> None:
    low, high = (int(v) for v in EPHEMERAL_BELOW_RANGE["net.ipv4.ip_local_port_range"].split())
    assert low < high < PORT_MIN
