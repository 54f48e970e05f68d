"""What the Slurm client commands on a command node talk to: the controller, its database and their health.

Handlers reach it as ``ctx.services["slurm"]``. ``controller_up``/``dbd_up`` are fault knobs: while
down, the clients fail with the texts real Slurm 22.05 prints when slurmctld/slurmdbd cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.commands import CommandContext, CommandResult
from simulator.scheduler import Scheduler
from simulator.users import UserDB

CONNECT_FAILURE = "Unable to contact slurm controller (connect failure)"


@dataclass
class SlurmService:
    scheduler: Scheduler
    users: UserDB
    cluster_name: str
    controller_name: str
    parsable_with_cluster: bool = False
    controller_up: bool = True
    dbd_up: bool = True


def slurm(ctx: CommandContext) -> SlurmService:
    service: SlurmService = ctx.services["slurm"]
    return service


def uid_of(ctx: CommandContext) -> int:
    account = slurm(ctx).users.get(ctx.user)
    return account.uid if account is not None else 65534


def dbd_down_result() -> CommandResult:
    """sacct when slurmdbd is unreachable."""
    return CommandResult(
        1,
        "",
        "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection to "
        "host:localhost:6819: Connection refused\n"
        "sacct: error: Sending PersistInit msg: Connection refused\n"
        "sacct: error: Problem talking to the database: Connection refused\n",
    )
