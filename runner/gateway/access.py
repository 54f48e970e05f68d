"""How the runner's account gets root for its rule edits on a gateway: bwVisu's ``sudo iptables``, or a site helper.

* :class:`SudoIptables` (the default; what bwVisu's gateways allow): ``sudo -n iptables -t nat -S CHAIN`` to list,
  ``sudo -n iptables-restore --noflush`` to edit, and chain set-up as check/create pairs of ``sudo -n iptables``
  calls (see :mod:`runner.gateway.commands`).
* :class:`ForwardHelper` (setting ``gateway-helper``, e.g. ``/usr/local/sbin/bwvisu-forward`` from
  ``bwvisu_site/gateway``): ``sudo -n HELPER list CHAIN``, ``sudo -n HELPER restore`` with the same restore text on
  stdin, and ``sudo -n HELPER ensure-chains``, one idempotent call. The helper edits only the runner's chains,
  within the site's port range and compute networks, so the account needs no raw iptables at all.

With idle sessions on, both also list the filter table's accounting chain with its counters (``sudo -n iptables -w
-t filter -S BWVISU-ACCT -v``, or ``sudo -n HELPER counters BWVISU-ACCT``) and create it (``-N`` and a ``FORWARD``
jump, or ``sudo -n HELPER ensure-accounting``); restore input then carries a ``*filter`` block of counting rules.

Both print and take exactly what iptables does, so listing parsers and restore input are shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runner.gateway import commands
from runner.gateway.iptables import ACCOUNTING_CHAIN, counters_command, list_command, restore_command

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

    def counters_argv(self) -> list[str]:
        """The accounting chain with its counters (``-S -v``), one call for every forward of the gateway."""
        ...

    def accounting_setup_steps(self) -> list[SetupStep]:
        """Create the accounting chain and its ``FORWARD`` jump where missing (idle sessions only)."""
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

    def counters_argv(self) -> list[str]:
        return counters_command(ACCOUNTING_CHAIN, iptables=SUDO_IPTABLES)

    def accounting_setup_steps(self) -> list[SetupStep]:
        steps: list[SetupStep] = []
        for chain, hook in commands.ACCOUNTING_CHAINS:
            sudo = SUDO_IPTABLES
            steps.append(
                (commands.chain_check_argv(chain, sudo, "filter"), commands.chain_create_argv(chain, sudo, "filter"))
            )
            steps.append(
                (
                    commands.jump_check_argv(hook, chain, sudo, "filter"),
                    commands.jump_insert_argv(hook, chain, sudo, "filter"),
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

    def counters_argv(self) -> list[str]:
        return ["sudo", "-n", self.path, "counters", ACCOUNTING_CHAIN]

    def accounting_setup_steps(self) -> list[SetupStep]:
        return [(None, ["sudo", "-n", self.path, "ensure-accounting"])]


def gateway_access(helper: str | None) -> GatewayAccess:
    """:class:`ForwardHelper` at ``helper``, or bwVisu's :class:`SudoIptables` without one."""
    return SudoIptables() if helper is None else ForwardHelper(helper)
