"""Command builders and output parsers for what the runner asks of a gateway besides rule edits.

* Probes: ``nc -z -v -w1 HOST PORT...`` per compute host (netcat-openbsd tries the ports one after another,
  so a host that never answers costs one second per port). The readiness sweep joins them with ``;`` into one
  ``sh -c`` script: one SSH command per gateway per sweep, at most one ``nc`` process at a time, however many
  jobs are waiting. A keyhole request's port-closed probe must answer quickly instead, whatever the job's
  hosts do: ``timeout DEADLINE sh -c 'nc ... & nc ... & wait'`` probes every host at once (in at most
  :data:`MAX_PARALLEL_PROBES` lanes, hosts beyond that taking turns in ``( ...; ... )`` groups) and ends
  the lot after DEADLINE seconds, exiting 124. ``timeout`` sends its default ``TERM``, which neither ``sh``
  nor ``nc`` catch; with ``-s KILL`` timeout would kill itself along with its group, which sshd reports as an
  exit signal, not a status. Words are quoted with :func:`shlex.join`; hosts must be IPv4 literals and
  ports integers, so nothing else reaches the script.
* Name resolution: ``getent ahostsv4 NAME...`` (glibc), parsed into name -> first IPv4 address.
* Chain set-up as separate ``iptables`` calls (``-S`` to test, ``-N``/``-I`` to create), and deletion
  input for ``iptables-restore --noflush`` that can remove DNAT and MASQUERADE lines independently, since
  the reconciler may find one without the other.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Sequence

from runner.gateway.iptables import (
    ACCOUNTING_CHAIN,
    COMMENT_PREFIX,
    DNAT_CHAIN,
    SNAT_CHAIN,
    ForwardRule,
    accounting_rule_args,
    dnat_rule_args,
    masquerade_rule_args,
)

PROBE_TIMEOUT_SECONDS = 1
REQUEST_PROBE_DEADLINE = 5
"""Seconds a keyhole request's port-closed probe may take on a gateway, all of the job's hosts together."""
MAX_PARALLEL_PROBES = 16
"""``nc`` processes a request's probe runs at once; a job with more hosts has them take turns."""
MIN_DEADLINE, MAX_DEADLINE = 0.01, 3600.0
TIMED_OUT_STATUSES = frozenset({124, 137})
"""``timeout``'s status when the deadline passed; 137 (128 + KILL) is what a shell reports had it been killed."""
# Not anchored to a line start: parallel ncs share stderr, and netcat-openbsd writes a failure in two pieces
# ("nc: connect to ... failed" then ": Connection refused\n"), so another nc's success line (one write) can
# follow a half-written failure on the same line.
_SUCCEEDED = re.compile(r"Connection to (\S+) (\d+) port \[[^\]]*\] succeeded!")


def _nc_calls(targets: Iterable[tuple[str, int]], timeout: int) -> list[list[str]]:
    """One ``nc`` per host with its ports, hosts in first-seen order; ValueError for anything but IPv4 and ports."""
    by_host: dict[str, set[int]] = {}
    for host, port in targets:
        ipaddress.IPv4Address(host)  # ValueError for anything but a literal address
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port {port!r} out of range")
        by_host.setdefault(host, set()).add(port)
    if not by_host:
        raise ValueError("nothing to probe")
    return [["nc", "-z", "-v", f"-w{timeout}", host, *map(str, sorted(ports))] for host, ports in by_host.items()]


def probe_argv(targets: Iterable[tuple[str, int]], *, timeout: int = PROBE_TIMEOUT_SECONDS) -> list[str]:
    """One command probing every ``(ipv4, port)``: ``nc`` for one host, else ``sh -c`` of one ``nc`` per host."""
    commands = _nc_calls(targets, timeout)
    if len(commands) == 1:
        return commands[0]
    return ["sh", "-c", "; ".join(shlex.join(c) for c in commands)]


def request_probe_argv(
    targets: Iterable[tuple[str, int]],
    *,
    deadline: float = REQUEST_PROBE_DEADLINE,
    timeout: int = PROBE_TIMEOUT_SECONDS,
    parallel: int = MAX_PARALLEL_PROBES,
) -> list[str]:
    """``timeout DEADLINE sh -c 'nc ... & nc ... & wait'``: every host probed at once, all ended after DEADLINE.

    Hosts are dealt round-robin into at most ``parallel`` lanes; a lane of several hosts probes them in turn,
    so without the deadline the probe would take up to ``ceil(hosts / parallel) * ports * timeout`` seconds
    when no host answers, and a moment when every host refuses or accepts at once.
    """
    if not MIN_DEADLINE <= deadline <= MAX_DEADLINE:  # also refuses NaN
        raise ValueError(f"deadline {deadline!r} out of range")
    if parallel < 1:
        raise ValueError("parallel must be positive")
    calls = [shlex.join(c) for c in _nc_calls(targets, timeout)]
    width = min(parallel, len(calls))
    lanes = [calls[i::width] for i in range(width)]
    jobs = [lane[0] if len(lane) == 1 else f"( {'; '.join(lane)} )" for lane in lanes]
    seconds = f"{deadline:.2f}".rstrip("0").rstrip(".")  # never an exponent, never 0 (which means no limit)
    return ["timeout", seconds, "sh", "-c", " & ".join([*jobs, "wait"])]


def parse_probe(stderr: str) -> set[tuple[str, int]]:
    """The ``(host, port)`` pairs netcat's ``-v`` output reports as accepting connections."""
    return {(m.group(1), int(m.group(2))) for m in _SUCCEEDED.finditer(stderr)}


def resolve_argv(names: Sequence[str]) -> list[str]:
    """``getent ahostsv4 NAME...``: IPv4 only, so every answer can go into ``--to-destination``."""
    if not names:
        raise ValueError("no names to resolve")
    return ["getent", "ahostsv4", *names]


def parse_ahostsv4(output: str, names: Sequence[str]) -> dict[str, str]:
    """name -> first IPv4 address from ``getent ahostsv4`` output; names without an answer are missing.

    Each key's block starts with a ``STREAM`` line naming the canonical host. A key is matched to its block by
    name (equal, or the canonical name is the key plus a domain); if that fails but there is one block per
    key, blocks are taken in key order, as getent prints them.
    """
    blocks: list[tuple[str, str]] = []
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == "STREAM":
            try:
                ipaddress.IPv4Address(words[0])
            except ValueError:
                continue
            blocks.append((words[2], words[0]))
    found: dict[str, str] = {}
    for name in names:
        for canonical, address in blocks:
            if canonical == name or canonical.startswith(name + "."):
                found[name] = address
                break
    if len(found) < len(names) and len(blocks) == len(names):
        return {name: address for name, (_, address) in zip(names, blocks, strict=True)}
    return found


def chain_check_argv(chain: str, iptables: Sequence[str], table: str = "nat") -> list[str]:
    return [*iptables, "-t", table, "-S", chain]


def chain_create_argv(chain: str, iptables: Sequence[str], table: str = "nat") -> list[str]:
    return [*iptables, "-t", table, "-N", chain]


def jump_check_argv(hook: str, chain: str, iptables: Sequence[str], table: str = "nat") -> list[str]:
    return [*iptables, "-t", table, "-C", hook, "-j", chain]


def jump_insert_argv(hook: str, chain: str, iptables: Sequence[str], table: str = "nat") -> list[str]:
    return [*iptables, "-t", table, "-I", hook, "1", "-j", chain]


CHAINS = ((DNAT_CHAIN, "PREROUTING"), (SNAT_CHAIN, "POSTROUTING"))
ACCOUNTING_CHAINS = ((ACCOUNTING_CHAIN, "FORWARD"),)
"""The filter table's chain of counting rules (idle sessions), jumped to first thing in ``FORWARD``."""


def _line(op: str, chain: str, args: list[str]) -> str:
    # iptables-restore honours double quotes; only the comment (a restricted job id) can need them. Quoting it
    # as ``iptables -S`` does keeps a listed line and a written one identical. No chain is declared: with
    # ``--noflush``, declaring a user chain flushes it.
    return " ".join([op, chain, *(f'"{a}"' if a.startswith(COMMENT_PREFIX) else a for a in args)])


def edit_input(
    *,
    add: Iterable[ForwardRule] = (),
    delete_dnat: Iterable[ForwardRule] = (),
    delete_masquerade: Iterable[ForwardRule] = (),
    add_accounting: Iterable[ForwardRule] = (),
    delete_accounting: Iterable[ForwardRule] = (),
) -> str:
    """One ``iptables-restore --noflush`` transaction: the listed deletions, then both rules of each addition.

    Accounting rules (filter table) add a ``*filter`` block, only when there are any: without idle sessions the
    text is exactly bwVisu's nat-only edit. iptables-restore commits each block by itself, nat first: a failed
    filter block leaves the nat edit done (and the call failed), and the idle sweep repairs the counting rules.
    """
    lines = ["*nat"]
    lines += [_line("-D", DNAT_CHAIN, dnat_rule_args(r)) for r in delete_dnat]
    lines += [_line("-D", SNAT_CHAIN, masquerade_rule_args(r)) for r in delete_masquerade]
    for rule in add:
        lines.append(_line("-A", DNAT_CHAIN, dnat_rule_args(rule)))
        lines.append(_line("-A", SNAT_CHAIN, masquerade_rule_args(rule)))
    lines.append("COMMIT")
    accounting = [_line("-D", ACCOUNTING_CHAIN, accounting_rule_args(r)) for r in delete_accounting]
    accounting += [_line("-A", ACCOUNTING_CHAIN, accounting_rule_args(r)) for r in add_accounting]
    if accounting:
        lines = lines if len(lines) > 2 else []  # an edit of counting rules only touches no nat chain
        lines += ["*filter", *accounting, "COMMIT"]
    return "\n".join(lines) + "\n"
