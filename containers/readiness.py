"""Readiness of a started testbed, checked the way a user would: real commands, bounded waits.

The controller is ready when ``scontrol ping`` reports it UP; the cluster when ``sinfo`` shows every
compute node idle; etcd when ``etcdctl endpoint health`` succeeds on every member; command and gateway
nodes when the runner's key logs in over real SSH. Each wait names what it waited for and, on timeout,
carries the relevant container's log tail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from containers.images import Progress
from containers.nodes import Node, NodeError, WaitTimeout, wait_until

if TYPE_CHECKING:
    from containers.testbed import Testbed

CONTROLLER_TIMEOUT = 120.0
NODES_TIMEOUT = 120.0
ETCD_TIMEOUT = 60.0
SSH_TIMEOUT = 60.0


def controller_up(controller: Node) -> bool:
    """``scontrol ping`` says the primary controller is UP."""
    result = controller.exec(["scontrol", "ping"])
    return result.ok and "is UP" in result.stdout


def node_states(controller: Node) -> dict[str, str]:
    """Compute node name -> Slurm state, as ``sinfo -N`` reports it (``idle``, ``down*``, ...)."""
    result = controller.exec(["sinfo", "-h", "-N", "-o", "%N %t"])
    if not result.ok:
        return {}
    states: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name, _, state = line.strip().partition(" ")
        if name:
            states[name] = state
    return states


def all_idle(controller: Node, hostnames: list[str]) -> bool:
    states = node_states(controller)
    return all(states.get(name) == "idle" for name in hostnames)


def etcd_healthy(member: Node) -> bool:
    # etcdctl finds the member's address and its TLS files in the ETCDCTL_* variables the testbed sets.
    result = member.exec(["etcdctl", "endpoint", "health"])
    return result.ok and "is healthy" in (result.stdout + result.stderr)


def _bounded(what: str, node: Node, check: object, timeout: float) -> None:
    assert callable(check)
    try:
        wait_until(what, check, timeout)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}\n--- last log lines of {node.container_name} ---\n{node.logs()}") from None


def wait_etcd(testbed: Testbed, say: Progress) -> None:
    """Wait until every etcd member reports healthy."""
    for member in testbed.nodes_of("etcd"):
        _bounded(f"etcd member {member.hostname} healthy", member, lambda m=member: etcd_healthy(m), ETCD_TIMEOUT)
    say(f"testbed {testbed.run_id}: etcd healthy")


def wait_ready(testbed: Testbed, say: Progress) -> None:
    """Wait for the controller and every compute node (in that order)."""
    controller = testbed.node("controller")
    _bounded("scontrol ping: controller UP", controller, lambda: controller_up(controller), CONTROLLER_TIMEOUT)
    say(f"testbed {testbed.run_id}: slurmctld up")
    computes = testbed.slurm_nodes()

    def idle() -> bool:
        for node in testbed.nodes_of("compute"):
            if not node.running():
                raise NodeError(f"{node.hostname} exited:\n{node.logs()}")
        return all_idle(controller, computes)

    try:
        wait_until(f"compute nodes {computes} idle", idle, NODES_TIMEOUT)
    except WaitTimeout as exc:
        states = node_states(controller)
        raise WaitTimeout(f"{exc}; sinfo says {states}\n{testbed.nodes_of('compute')[0].logs()}") from None
    say(f"testbed {testbed.run_id}: {len(computes)} compute nodes idle")


def wait_ssh(testbed: Testbed, say: Progress) -> None:
    """Wait until the runner's key logs into every command and gateway node over real SSH."""
    for node in [*testbed.nodes_of("command"), *testbed.nodes_of("gateway")]:
        _bounded(
            f"sshd on {node.hostname} accepting the runner's key",
            node,
            lambda n=node: testbed.ssh(n.hostname, "true", timeout=15).ok,
            SSH_TIMEOUT,
        )
    say(f"testbed {testbed.run_id}: sshd answering on command and gateway nodes")


def wait_node(testbed: Testbed, node: Node) -> None:
    """Wait until one (re)started node serves in its role again."""
    if node.role == "etcd":
        _bounded(f"etcd member {node.hostname} healthy", node, lambda: etcd_healthy(node), ETCD_TIMEOUT)
    elif node.role == "controller":
        _bounded("scontrol ping: controller UP", node, lambda: controller_up(node), CONTROLLER_TIMEOUT)
    elif node.role == "compute":
        controller = testbed.node("controller")
        names = node.aliases or (node.hostname,)
        _bounded(f"{node.hostname} idle", node, lambda: all_idle(controller, list(names)), NODES_TIMEOUT)
    elif node.role in ("command", "gateway"):
        what = f"sshd on {node.hostname} accepting the runner's key"
        _bounded(what, node, lambda: testbed.ssh(node.hostname, "true", timeout=15).ok, SSH_TIMEOUT)
