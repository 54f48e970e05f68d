"""Helpers the contract tests share: the runner's own Slurm calls over a backend, and bounded waiting."""

from __future__ import annotations

from typing import TypeVar

from runner.slurm import cli as slurm
from runner.ssh import CommandOutput
from tests.contract.backends import Backend
from tests.polling import eventually

T = TypeVar("T")


async def submit(backend: Backend, script: str, *extra: str, tag: str = "contract") -> str:
    """``sbatch`` exactly as the runner sends it (script on stdin), plus ``extra`` options; returns the id."""
    argv = [*slurm.sbatch_argv(backend.user, tag, backend.workdir(backend.user), backend.slurm_helper), *extra]
    out = await backend.command.run(argv, stdin=script)
    assert out.ok, f"sbatch exit {out.exit_status}: {out.stderr}"
    return slurm.parse_sbatch(out.stdout)


async def squeue(backend: Backend, ids: list[str]) -> dict[str, dict[str, str]]:
    out = await backend.command.run(slurm.squeue_argv(ids))
    assert out.ok, f"squeue exit {out.exit_status}: {out.stderr}"
    return slurm.parse_squeue(out.stdout)


async def sacct(backend: Backend, ids: list[str]) -> dict[str, dict[str, str]]:
    out = await backend.command.run(slurm.sacct_argv(ids))
    assert out.ok, f"sacct exit {out.exit_status}: {out.stderr}"
    return slurm.parse_sacct(out.stdout)


async def scancel(backend: Backend, job_id: str, user: str | None = None) -> CommandOutput:
    return await backend.command.run(slurm.scancel_argv(user or backend.user, job_id, backend.slurm_helper))


async def wait_state(backend: Backend, job_id: str, states: set[str], timeout: float = 60) -> dict[str, str]:
    """The job's squeue row once its state is one of ``states``."""
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
