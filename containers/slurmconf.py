"""The cluster-wide files every Slurm node shares: ``slurm.conf``, ``cgroup.conf`` and the munge key.

They are rendered per testbed (the node list depends on how many compute nodes it has) and handed to
each container as base64 environment variables that the image's entrypoint writes out before the daemons
start. The settings are the ones that work in unprivileged containers: no cgroup-based tracking or
confinement, and the node's advertised resources taken from the configuration, not the hardware.
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


def render_slurm_conf(compute_count: int) -> str:
    """``slurm.conf`` for one controller and ``compute_count`` compute nodes in one partition."""
    if compute_count < 1:
        raise ValueError("a cluster needs at least one compute node")
    nodes = f"compute[1-{compute_count}]" if compute_count > 1 else "compute1"
    return f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost={CONTROLLER_HOST}
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
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
NodeName={nodes} CPUs={CPUS_PER_NODE} RealMemory={MEMORY_MB_PER_NODE} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
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


def render_files(compute_count: int, munge_key: bytes | None = None) -> SlurmFiles:
    """All cluster files for a testbed with ``compute_count`` compute nodes."""
    return SlurmFiles(render_slurm_conf(compute_count), CGROUP_CONF, munge_key or new_munge_key())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
