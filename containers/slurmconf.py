"""The cluster-wide files every Slurm node shares: ``slurm.conf``, ``cgroup.conf`` and the munge key.

They are rendered per testbed (the node list depends on how many compute nodes it has) and handed to
each container as base64 environment variables that the image's entrypoint writes out before the daemons
start. The settings are the ones that work in unprivileged containers: no cgroup-based tracking or
confinement, and the node's advertised resources taken from the configuration, not the hardware.

At scale, one container may host several compute nodes (``per_host`` > 1): each is its own ``NodeName`` with its
own ``Port`` and ``NodeHostname`` the container, served by its own ``slurmd -N NAME`` (Debian's slurmd runs several
per host), with spool, pid and log files per node name (``%n``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

CLUSTER_NAME = "bwvisu"
PARTITION = "batch"
CONTROLLER_HOST = "controller"
# Advertised per compute node (config_overrides): enough slots for many light jobs on a 2-core machine.
CPUS_PER_NODE = 16
MEMORY_MB_PER_NODE = 4000
SLURMD_PORT = 6818
"""slurmd's default port; with several nodes per host, node i of a host listens on ``SLURMD_PORT + i``."""


@dataclass(frozen=True)
class SlurmFiles:
    """Rendered cluster files, ready to hand to a container as environment variables."""

    slurm_conf: str
    cgroup_conf: str
    munge_key: bytes

    def environment(self) -> dict[str, str]:
        """The variables the images' ``testbed-init.sh`` reads."""
        return {
            "SLURM_CONF_B64": _b64(self.slurm_conf.encode()),
            "CGROUP_CONF_B64": _b64(self.cgroup_conf.encode()),
            "MUNGE_KEY_B64": _b64(self.munge_key),
        }


def compute_hostnames(count: int) -> list[str]:
    """Hostnames of ``count`` compute nodes: ``compute1``, ``compute2``, ..."""
    return [f"compute{i}" for i in range(1, count + 1)]


def compute_hosts(count: int, per_host: int = 1) -> dict[str, list[str]]:
    """Container hostname -> the compute nodes (Slurm node names) it hosts.

    One node per host: each container is named after its node (``compute1`` ...). Several: ``computehost1`` ...
    host ``per_host`` consecutive nodes each (the last one fewer when ``count`` is not a multiple).
    """
    if per_host < 1:
        raise ValueError("a compute host runs at least one slurmd")
    names = compute_hostnames(count)
    if per_host == 1:
        return {name: [name] for name in names}
    return {f"computehost{i // per_host + 1}": names[i : i + per_host] for i in range(0, count, per_host)}


def _node_lines(compute_count: int, per_host: int) -> str:
    resources = f"CPUs={CPUS_PER_NODE} RealMemory={MEMORY_MB_PER_NODE} State=UNKNOWN"
    if per_host == 1:
        nodes = f"compute[1-{compute_count}]" if compute_count > 1 else "compute1"
        return f"NodeName={nodes} {resources}"
    return "\n".join(
        f"NodeName={name} NodeHostname={host} Port={SLURMD_PORT + index} {resources}"
        for host, names in compute_hosts(compute_count, per_host).items()
        for index, name in enumerate(names)
    )


def render_slurm_conf(compute_count: int, per_host: int = 1) -> str:
    """``slurm.conf`` for one controller and ``compute_count`` compute nodes in one partition, ``per_host`` per
    container (:func:`compute_hosts`)."""
    if compute_count < 1:
        raise ValueError("a cluster needs at least one compute node")
    per_node = "/%n" if per_host > 1 else ""
    slurmd_files = "-%n" if per_host > 1 else ""
    # At scale, each job goes to the least-loaded node, so every node runs its share instead of the first filling up.
    spread = " LLN=YES" if per_host > 1 else ""
    return f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost={CONTROLLER_HOST}
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd{per_node}
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd{slurmd_files}.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd{slurmd_files}.log
# No cgroups in an unprivileged container: track processes by /proc, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# A node that was down comes back by itself when its slurmd registers again.
ReturnToService=2
# Take CPUs and memory from this file, not from the container's hardware.
SlurmdParameters=config_overrides
# Root may not run jobs, whatever sudo allows: the runner's account acts only for ordinary users.
DisableRootJobs=YES
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={CONTROLLER_HOST}
JobCompType=jobcomp/none
# Short timers: jobs end and nodes change state quickly, which keeps tests fast.
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=30
MessageTimeout=10
SchedulerParameters=sched_interval=2,bf_interval=2
{_node_lines(compute_count, per_host)}
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP{spread}
"""


CGROUP_CONF = """\
# Debian's Slurm 22.05 has only the v1 plugin; with proctrack/linuxproc and task/none it is loaded
# but never used to confine anything, so it starts without a writable cgroup hierarchy.
CgroupPlugin=cgroup/v1
CgroupAutomount=no
"""


def new_munge_key() -> bytes:
    """A fresh 1024-byte munge key for one testbed."""
    return secrets.token_bytes(1024)


def render_files(compute_count: int, munge_key: bytes | None = None, per_host: int = 1) -> SlurmFiles:
    """All cluster files for a testbed with ``compute_count`` compute nodes, ``per_host`` per container."""
    return SlurmFiles(render_slurm_conf(compute_count, per_host), CGROUP_CONF, munge_key or new_munge_key())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
