"""Which commands a node answers, by role: Slurm clients on command nodes, iptables on gateways.

``nc`` (from the gateway's handlers), the user lookups, ``sh -c`` and coreutils' ``timeout`` answer everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator import netdb, procfs, sacct, sbatch, scontrol, shell, squeue, timeout, users
from simulator.commands import Handler
from simulator.config import Role
from simulator.dispatch import StdinPredicate

COMMON: dict[str, Handler] = {
    "id": users.id_command,
    "getent": netdb.getent_command,
    "hostname": users.hostname_command,
    "true": users.true_command,
    "sh": shell.sh_command,
    "timeout": timeout.timeout_command,
    "cat": procfs.cat_command,
}

SLURM: dict[str, Handler] = {
    "sbatch": sbatch.sbatch,
    "squeue": squeue.squeue,
    "scancel": scontrol.scancel,
    "sacct": sacct.sacct,
    "scontrol": scontrol.scontrol,
}

STDIN_READERS: dict[str, StdinPredicate] = {
    "sbatch": sbatch.needs_stdin,
    "iptables-restore": lambda _argv: True,
    "cat": lambda argv: len(argv) == 1,  # cat FILE reads no stdin
}


def _timeout_reads_stdin(argv: list[str]) -> bool:
    """``timeout`` hands its input to the command it runs."""
    try:
        _, _, command = timeout.parse_options(argv[1:])
    except timeout.UsageError:  # timeout answers without reading
        return False
    predicate = STDIN_READERS.get(command[0])
    return predicate is not None and predicate(command)


STDIN_READERS["timeout"] = _timeout_reads_stdin


def handlers_for(
    roles: set[Role], gateway_handlers: Mapping[str, Handler]
) -> tuple[dict[str, Handler], dict[str, StdinPredicate]]:
    """The handler registry and stdin readers of a node with ``roles``; gateways add ``gateway_handlers``."""
    handlers = dict(COMMON)
    if "nc" in gateway_handlers:
        handlers["nc"] = gateway_handlers["nc"]
    if Role.COMMAND in roles:
        handlers.update(SLURM)
    if Role.GATEWAY in roles:
        handlers.update(gateway_handlers)
    return handlers, dict(STDIN_READERS)
