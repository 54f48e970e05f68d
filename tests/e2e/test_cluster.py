"""The containerised cluster end to end, driven as the runner will drive it: over SSH, through the site helpers.

A job submitted on stdin (``sudo -n bwvisu-slurm-as alice sbatch``) runs on a compute node and listens on a port;
a DNAT rule added through ``bwvisu-forward`` on a gateway makes it reachable from the client on the public network,
which cannot reach the compute node directly.
"""

from __future__ import annotations

import pytest

from containers.nodes import wait_until
from containers.testbed import FORWARD, SLURM_AS, Testbed
from tests.e2e.e2e_support import AS_ALICE, SUBMIT, forward, ok, port_open_from, sacct_state, squeue_row, wait_running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def listener_script(port: int) -> str:
    """A batch script whose job answers every connection on ``port`` with its job id and node."""
    return f"""#!/bin/bash
#SBATCH --job-name=listener --time=10
exec python3 -c '
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port}))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(("job %s on %s\\n" % (os.environ["SLURM_JOB_ID"], os.environ["SLURMD_NODENAME"])).encode())
    c.close()
'
"""


def test_cluster_is_ready(testbed: Testbed) -> None:
    ep = testbed.endpoints
    assert "is UP" in ok(testbed.node("controller").exec(["scontrol", "ping"]))
    # both nodes up and taking jobs; other tiers' jobs on the session's testbed may keep them busy
    nodes = dict(line.split() for line in ok(testbed.ssh("command1", "sinfo -h -N -o '%N %t'")).splitlines())
    assert set(nodes) == {"compute1", "compute2"}
    assert set(nodes.values()) <= {"idle", "mix", "alloc"}, nodes
    config = testbed.runner_config()
    assert config["command-nodes"] == [{"ip": ep.command[0].cluster_ip, "user": "bwvisu", "port": 22}]
    assert (config["command-node-helper"], config["gateway-helper"]) == (SLURM_AS, FORWARD)
    assert config["compute-networks"] == [ep.cluster_subnet]
    assert [g["external-ip"] for g in config["gateway-nodes"]] == [g.public_ip for g in ep.gateways]
    assert all(g["internal-ip"] for g in config["gateway-nodes"])
    assert config["etcd-servers"] == [{"ip": ep.etcd[0].cluster_ip, "port": 2379}]
    assert config["etcd"]["user"] == "bwvisu-runner"
    health = testbed.node("etcd1").exec(["etcdctl", "endpoint", "health"])  # TLS files from ETCDCTL_* variables
    assert "is healthy" in health.stdout + health.stderr


def test_runner_accounts_have_their_sudo_rules(testbed: Testbed) -> None:
    """The helpers for bwvisu (tests/e2e/test_least_privilege.py attacks them), bwVisu's rules for bwvisu-compat."""
    assert "uid=2001(alice)" in ok(testbed.ssh("command1", "id alice"))
    assert ok(testbed.ssh("command1", "getent passwd bob")).startswith("bob:x:2002:")
    assert ok(testbed.ssh("command1", "sudo -n -l")).rstrip().endswith(f"(root) NOPASSWD: {SLURM_AS}")
    assert ok(testbed.ssh("gateway1", "sudo -n -l")).rstrip().endswith(f"(root) NOPASSWD: {FORWARD}")
    assert "slurm" in ok(testbed.ssh("command1", "sudo -n -u alice squeue --version", user="bwvisu-compat"))
    nat = ok(testbed.ssh("gateway1", "sudo -n iptables -t nat -S", user="bwvisu-compat"))
    assert "-P PREROUTING ACCEPT" in nat
    others = [
        ("command1", "sudo -n cat /etc/shadow"), ("command1", "sudo -n iptables -S"),
        ("gateway1", "sudo -n sbatch --version"), ("gateway1", "sudo -n cat /etc/shadow"),
    ]  # fmt: skip
    for node, command in others:
        assert not testbed.ssh(node, command, user="bwvisu-compat").ok
        assert not testbed.ssh(node, command).ok


def test_job_reachable_only_through_a_gateway_forward(testbed: Testbed) -> None:
    ep = testbed.endpoints
    port, external = 50101, 51101
    job_id = ok(testbed.ssh("command1", SUBMIT, stdin=listener_script(port))).strip()
    assert job_id.isdigit()
    node = wait_running(testbed, job_id)
    assert squeue_row(testbed, job_id) == [job_id, "RUNNING", node, "alice"]
    # Accounting reaches slurmdbd asynchronously: sacct may still say PENDING for a moment.
    wait_until(f"sacct: job {job_id} RUNNING", lambda: sacct_state(testbed, job_id) == "RUNNING", 30)
    compute_ip = next(c.cluster_ip for c in ep.compute if c.hostname == node)
    wait_until(f"job {job_id} listening", lambda: port_open_from(testbed, "gateway1", compute_ip, port), 30)

    assert ep.client is not None
    assert ep.client.public_ip
    gateway_ip = ep.gateways[0].public_ip
    assert gateway_ip is not None
    # Before any forward: the gateway's public side refuses, the compute node is unreachable from outside.
    assert not port_open_from(testbed, "client", gateway_ip, external)
    assert not port_open_from(testbed, "client", compute_ip, port)

    ok(forward(testbed, "gateway1", "-A", external, f"{compute_ip}:{port}"))
    try:
        rules = ok(testbed.ssh("gateway1", f"sudo -n {FORWARD} list BWVISU"))
        assert f"--to-destination {compute_ip}:{port}" in rules
        reply = ok(testbed.node("client").exec(["nc", "-w", "5", gateway_ip, str(external)]))
        assert reply == f"job {job_id} on {node}\n"
        # The forward does not open the compute node itself to the public network.
        assert not port_open_from(testbed, "client", compute_ip, port)
    finally:
        ok(forward(testbed, "gateway1", "-D", external, f"{compute_ip}:{port}"))
    assert not port_open_from(testbed, "client", gateway_ip, external)

    ok(testbed.ssh("command1", f"{AS_ALICE} scancel {job_id}"))
    wait_until(f"job {job_id} CANCELLED", lambda: sacct_state(testbed, job_id).startswith("CANCELLED"), 60)
    assert squeue_row(testbed, job_id) == []


def test_end_states_in_sacct(testbed: Testbed) -> None:
    done = ok(testbed.ssh("command1", SUBMIT, stdin="#!/bin/bash\necho done\n")).strip()
    failed = ok(testbed.ssh("command1", SUBMIT, stdin="#!/bin/bash\nexit 7\n")).strip()
    wait_until(f"job {done} COMPLETED", lambda: sacct_state(testbed, done) == "COMPLETED", 60)
    wait_until(f"job {failed} FAILED", lambda: sacct_state(testbed, failed) == "FAILED", 60)
    rows = ok(testbed.ssh("command1", f"sacct -P -n -X -o JobID,State,ExitCode -j {done},{failed}"))
    assert rows.splitlines() == [f"{done}|COMPLETED|0:0", f"{failed}|FAILED|7:0"]
    log = testbed.node("compute1").exec(["cat", f"/home/alice/slurm-{done}.out"])
    log2 = testbed.node("compute2").exec(["cat", f"/home/alice/slurm-{done}.out"])
    assert "done\n" in (log.stdout + log2.stdout)
