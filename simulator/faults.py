"""Fault knobs a test switches on: slow commands, commands failing with Slurm's texts, dropped connections,
silent hosts.

Node-level faults (SSH down, node failure, controller down) live on :class:`simulator.cluster.SimCluster`;
this module holds the per-command ones that the dispatcher consults on every call, and the addresses that
never answer a connection (as behind a firewall that drops packets, or a host that is switched off), which
``nc`` consults: every simulated host is a loopback address, where a connect is answered at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

DEFAULT_FAILURE_TEXT = {
    "sbatch": "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
    "squeue": "slurm_load_jobs error: Socket timed out on send/recv operation\n",
    "scancel": "scancel: error: Socket timed out on send/recv operation\n",
    "sacct": "sacct: error: Problem talking to the database: Socket timed out on send/recv operation\n",
    "scontrol": "slurm_load_jobs error: Socket timed out on send/recv operation\n",
}


class FaultKind(Enum):
    FAIL = "fail"
    DROP = "drop"


@dataclass
class CommandFault:
    """Make calls ``at_call`` .. ``at_call + times - 1`` (counted per command name, 1-based) misbehave."""

    command: str
    kind: FaultKind
    at_call: int = 1
    times: int = 1
    exit_status: int = 1
    stdout: str = ""
    stderr: str | None = None
    execute: bool = False
    """For DROP: run the command before dropping (its effect happens, the answer is lost)."""
    node: str | None = None

    def matches(self, command: str, call: int, node: str) -> bool:
        return (
            command == self.command
            and self.at_call <= call < self.at_call + self.times
            and (self.node is None or self.node == node)
        )

    @property
    def failure_text(self) -> str:
        if self.stderr is not None:
            return self.stderr
        return DEFAULT_FAILURE_TEXT.get(self.command, f"{self.command}: error: simulated failure\n")


@dataclass
class Faults:
    """Per-command faults; counters count every call of a command on any node."""

    slow: dict[str, float] = field(default_factory=dict)
    rules: list[CommandFault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    silent: set[str] = field(default_factory=set)
    """Addresses whose every connect attempt gets no answer at all."""

    def silence_host(self, address: str) -> None:
        """Connections to ``address`` are never answered: ``nc -w N`` gives up after N seconds per port."""
        self.silent.add(address)

    def slow_command(self, command: str, seconds: float) -> None:
        """Every ``command`` call waits ``seconds`` before it runs."""
        self.slow[command] = seconds

    def fail_command(
        self,
        command: str,
        *,
        at_call: int | None = None,
        times: int = 1,
        stderr: str | None = None,
        exit_status: int = 1,
        node: str | None = None,
    ) -> CommandFault:
        """The ``at_call``-th call (default: the next one) fails with Slurm's error text (or ``stderr``)."""
        rule = CommandFault(
            command,
            FaultKind.FAIL,
            at_call if at_call is not None else self.calls[command] + 1,
            times,
            exit_status,
            stderr=stderr,
            node=node,
        )
        self.rules.append(rule)
        return rule

    def drop_connection(
        self,
        command: str,
        *,
        at_call: int | None = None,
        times: int = 1,
        execute: bool = False,
        node: str | None = None,
    ) -> CommandFault:
        """The ``at_call``-th call's SSH connection is cut after stdin was read, before any answer."""
        rule = CommandFault(
            command,
            FaultKind.DROP,
            at_call if at_call is not None else self.calls[command] + 1,
            times,
            execute=execute,
            node=node,
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.slow.clear()
        self.rules.clear()
        self.silent.clear()

    def next_call(self, command: str, node: str) -> tuple[float, CommandFault | None]:
        """Count a call; return its delay and the fault (if any) it triggers."""
        self.calls[command] += 1
        call = self.calls[command]
        rule = next((r for r in self.rules if r.matches(command, call, node)), None)
        return self.slow.get(command, 0.0), rule
