"""How the runner's account gets root for its rule edits on a gateway: bwVisu's ``sudo iptables``, or a site helper.

* :class:`SudoIptables` (the default; what bwVisu's gateways allow): ``sudo -n iptables -t nat -S CHAIN`` to list,
  ``sudo -n iptables-restore --noflush`` to edit, and chain set-up as check/create pairs of ``sudo -n iptables``
  calls (see :mod:`runner.gateway.commands`).
* :class:`ForwardHelper` (setting ``gateway-helper``, e.g. ``/usr/local/sbin/bwvisu-forward`` from
  ``bwvisu_site/gateway``): ``sudo -n HELPER list CHAIN``, ``sudo -n HELPER restore`` with the same restore text on
  stdin, and ``sudo -n HELPER ensure-chains``, one idempotent call. The helper edits only the runner's chains,
  within the site's port range and compute networks, so the account needs no raw iptables at all.

Both print and take exactly what iptables does, so listing parsers and restore input are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runner.gateway import commands
from runner.gateway.iptables import list_command, restore_command

SUDO_IPTABLES = ("sudo", "-n", "iptables")
SUDO_IPTABLES_RESTORE = ("sudo", "-n", "iptables-restore")

SetupStep = tuple[list[str] | None, list[str]]
"""``(check, create)``: run ``create`` unless ``check`` succeeds (``None``: always run it, and it must succeed)."""


class GatewayAccess(Protocol):
    """The argv of each privileged gateway operation."""

    def list_argv(self, chain: str) -> list[str]:
        """``-S`` listing of one of the runner's chains."""
        ...

    def restore_argv(self) -> list[str]:
        """One ``iptables-restore --noflush`` transaction, its text on stdin."""
        ...

    def setup_steps(self) -> list[SetupStep]:
        """Create the runner's chains and their jumps where missing; never flushes."""
        ...


@dataclass(frozen=True)
class SudoIptables:
    """bwVisu's way: the account may ``sudo`` iptables and iptables-restore with any arguments."""

    def list_argv(self, chain: str) -> list[str]:
        return list_command(chain, iptables=SUDO_IPTABLES)

    def restore_argv(self) -> list[str]:
        return restore_command(iptables_restore=SUDO_IPTABLES_RESTORE)

    def setup_steps(self) -> list[SetupStep]:
        steps: list[SetupStep] = []
        for chain, hook in commands.CHAINS:
            steps.append(
                (commands.chain_check_argv(chain, SUDO_IPTABLES), commands.chain_create_argv(chain, SUDO_IPTABLES))
            )
            steps.append(
                (
                    commands.jump_check_argv(hook, chain, SUDO_IPTABLES),
                    commands.jump_insert_argv(hook, chain, SUDO_IPTABLES),
                )
            )
        return steps


@dataclass(frozen=True)
class ForwardHelper:
    """A site's root-owned helper at ``path`` (``bwvisu-forward``), the only thing the account may ``sudo``."""

    path: str

    def list_argv(self, chain: str) -> list[str]:
        return ["sudo", "-n", self.path, "list", chain]

    def restore_argv(self) -> list[str]:
        return ["sudo", "-n", self.path, "restore"]

    def setup_steps(self) -> list[SetupStep]:
        return [(None, ["sudo", "-n", self.path, "ensure-chains"])]


def gateway_access(helper: str | None) -> GatewayAccess:
    """:class:`ForwardHelper` at ``helper``, or bwVisu's :class:`SudoIptables` without one."""
    return SudoIptables() if helper is None else ForwardHelper(helper)
