"""Where a job's forward may point: the nodes Slurm allocated to the job while Slurm reports it RUNNING.

A keyhole request names hostnames (the client expands ``SLURM_JOB_NODELIST``), but the job's owner can read
the job's token and send any list. So the service never forwards to a name taken from the request: it takes
the node list from Slurm (the job watcher's last ``squeue`` row when that row already shows the job RUNNING,
else one ``squeue`` for this job alone) and only checks that the request names nothing else. The row must
also carry the runner's job name and the job's user, so a record pointing at someone else's Slurm job
cannot borrow that job's nodes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runner.errors import HostsNotAllocated, JobNotRunning, RunnerError, TargetOutsideNetworks
from runner.records import JobRecord
from runner.slurm import cli as slurm
from runner.slurm.hostlist import expand

log = logging.getLogger(__name__)

SLURM_RUNNING = "RUNNING"


class SlurmQuery(Protocol):
    """The part of :class:`runner.slurm.cluster.Scheduler` the keyhole needs: one squeue for some jobs."""

    async def query(self, slurm_ids: list[str]) -> dict[str, dict[str, str]]: ...


@dataclass(frozen=True)
class Allocation:
    """A RUNNING job's nodes as Slurm names them; ``nodes[0]`` is the batch host, where the script runs."""

    slurm_id: str
    nodes: tuple[str, ...]
    asked_slurm: bool  # False when the watcher's row was enough


def _from_row(job: JobRecord, row: Mapping[str, str], *, asked_slurm: bool) -> Allocation | None:
    """The allocation a squeue row shows for ``job``, or None when the row is not that job RUNNING."""
    if row.get("slurm-state") != SLURM_RUNNING or job.slurm_id is None:
        return None
    if row.get("slurm-job-id", job.slurm_id) != job.slurm_id:
        return None
    if row.get("job-name") != slurm.job_name(job.job_id) or row.get("user") != job.uid:
        log.warning(
            "keyhole: job %s: Slurm job %s is %r of user %r, not this runner job's; refusing",
            job.job_id,
            job.slurm_id,
            row.get("job-name"),
            row.get("user"),
        )
        return None
    try:
        nodes = tuple(expand(row.get("node-list", "")))
    except RunnerError:
        log.warning("keyhole: job %s: unreadable node list %r from Slurm", job.job_id, row.get("node-list"))
        return None
    return Allocation(job.slurm_id, nodes, asked_slurm) if nodes else None


async def confirmed_allocation(job: JobRecord, scheduler: SlurmQuery) -> Allocation:
    """The job's nodes while Slurm reports it RUNNING; :class:`JobNotRunning` otherwise.

    The watcher's row is used when it already shows the job RUNNING with its nodes; otherwise Slurm is asked
    about this one job (a job's client usually calls before the watcher's next tick has seen it start).
    """
    seen = _from_row(job, job.details, asked_slurm=False) if job.slurm_state == SLURM_RUNNING else None
    if seen is not None:
        return seen
    if job.slurm_id is None:
        raise JobNotRunning("the job is not running yet", internal=f"job {job.job_id}: no Slurm id yet")
    rows = await scheduler.query([job.slurm_id])
    row = rows.get(job.slurm_id)
    asked = _from_row(job, row, asked_slurm=True) if row is not None else None
    if asked is None:
        state = row.get("slurm-state", "?") if row is not None else "gone"
        raise JobNotRunning(
            f"Slurm does not report the job as RUNNING ({state})", internal=f"job {job.job_id}: squeue row {row}"
        )
    return asked


def check_requested_hosts(requested: Sequence[str], allocation: Allocation) -> None:
    """The request may name only the job's own nodes, each once, at most as many as it has."""
    if len(requested) > len(allocation.nodes):
        raise HostsNotAllocated(
            f"the request names {len(requested)} hosts; the job has {len(allocation.nodes)} node(s)",
            internal=f"requested {list(requested)[:10]}, allocated {list(allocation.nodes)[:10]}",
        )
    foreign = [h for h in requested if h not in allocation.nodes]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise HostsNotAllocated(f"not nodes of this job: {shown}", internal=f"allocated {list(allocation.nodes)[:10]}")


def check_targets(addresses: Mapping[str, str], networks: Sequence[ipaddress.IPv4Network]) -> None:
    """Every resolved node address lies in one of ``networks`` (no networks configured: any address)."""
    if not networks:
        return
    outside = [f"{name} ({ip})" for name, ip in addresses.items() if not in_networks(ip, networks)]
    if outside:
        raise TargetOutsideNetworks(
            f"outside the compute networks: {', '.join(outside[:5])}",
            internal=f"networks {[str(n) for n in networks]}",
        )


def in_networks(ip: str, networks: Sequence[ipaddress.IPv4Network]) -> bool:
    """Whether ``ip`` is an IPv4 address inside one of ``networks``."""
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)
