"""The runner's own production classes over a contract backend, and bounded waiting for what they report.

:func:`scheduler` is the :class:`runner.slurm.cluster.SlurmCluster` the runner builds (``runner.app``): its
:class:`~runner.slurm.cluster.CommandNodes` over the backend's command node, with the set-up's command-node helper.
:func:`gateway_pool` is the :class:`runner.gateway.pool.GatewayPool` the keyhole service builds
(``runner.keyhole.assembly.gateway_pool``) over the backend's gateway, with the set-up's gateway access. Tests call
them, not the command line, unless the command line itself is what they are about.
"""

from __future__ import annotations

from runner.gateway.access import gateway_access
from runner.gateway.pool import Gateway, GatewayPool
from runner.slurm.cluster import CommandNodes, SlurmCluster
from tests.contract.backends import Backend
from tests.polling import eventually

DOWN_RETRY_AFTER = 60.0


def scheduler(backend: Backend) -> SlurmCluster:
    """The runner's Slurm glue over ``backend``'s command node, through the set-up's helper (if any)."""
    return SlurmCluster(CommandNodes([backend.command], DOWN_RETRY_AFTER), backend.slurm_helper)


def gateway_pool(backend: Backend) -> GatewayPool:
    """The runner's gateway pool over ``backend``'s gateway (SSH and public address alike: only SSH is used)."""
    host = backend.gateway.host
    gateway = Gateway(backend.gateway, host, host)
    return GatewayPool([gateway], down_retry_after=DOWN_RETRY_AFTER, access=gateway_access(backend.gateway_helper))


def with_directives(script: str, *options: str) -> str:
    """``script`` with ``#SBATCH`` lines for ``options`` right after its first line (the runner sends no options)."""
    first, _, rest = script.partition("\n")
    return "".join(f"{line}\n" for line in [first, *(f"#SBATCH {o}" for o in options)]) + rest


async def submit(backend: Backend, script: str, *options: str, tag: str = "contract") -> str:
    """``SlurmCluster.submit`` for ``backend.user`` in their workdir; ``options`` become ``#SBATCH`` directives."""
    workdir = backend.workdir(backend.user)
    return await scheduler(backend).submit(backend.user, tag, workdir, with_directives(script, *options))


async def squeue(backend: Backend, ids: list[str]) -> dict[str, dict[str, str]]:
    return await scheduler(backend).query(ids)


async def sacct(backend: Backend, ids: list[str]) -> dict[str, dict[str, str]]:
    return await scheduler(backend).accounting(ids)


async def cancel(backend: Backend, job_id: str, user: str | None = None) -> bool:
    """``SlurmCluster.cancel`` as ``user`` (default ``backend.user``): False when Slurm no longer knows the job."""
    return await scheduler(backend).cancel(user or backend.user, job_id)


async def wait_state(backend: Backend, job_id: str, states: set[str], timeout: float = 60) -> dict[str, str]:
    """The job's squeue row once its state is one of ``states``; on timeout the failure shows the last rows seen."""
    rows = await eventually(
        lambda: squeue(backend, [job_id]),
        lambda rows: rows.get(job_id, {}).get("slurm-state") in states,
        timeout,
        f"job {job_id} in {sorted(states)}",
    )
    return rows[job_id]


async def wait_accounted(
    backend: Backend, job_id: str, states: set[str], job_name: str, timeout: float = 60
) -> dict[str, str]:
    """The job's sacct row once accounting shows one of ``states`` and the job's own name.

    Real slurmdbd lags the queue both ways: PENDING for a moment after squeue says RUNNING, and right after
    the end a row with the final state but ``JobName=allocation`` and only the batch host as ``NodeList``.
    """
    rows = await eventually(
        lambda: sacct(backend, [job_id]),
        lambda rows: rows.get(job_id, {}).get("slurm-state") in states and rows[job_id]["job-name"] == job_name,
        timeout,
        f"sacct: job {job_id} in {sorted(states)}",
    )
    return rows[job_id]
