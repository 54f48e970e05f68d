"""Command builders and output parsers for what the runner asks of a gateway besides rule edits.

* Readiness and port-closed probes: ``nc -z -v -w1 HOST PORT...`` per compute host, several hosts joined into
  one ``sh -c`` script so a whole sweep is one SSH command per gateway. Words are quoted with
  :func:`shlex.join`; hosts must be IPv4 literals and ports integers, so nothing else reaches the script.
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

from runner.gateway.iptables import DNAT_CHAIN, SNAT_CHAIN, ForwardRule, dnat_rule_args, masquerade_rule_args

PROBE_TIMEOUT_SECONDS = 1
_SUCCEEDED = re.compile(r"^Connection to (\S+) (\d+) port \[[^\]]*\] succeeded!", re.MULTILINE)


def probe_argv(targets: Iterable[tuple[str, int]], *, timeout: int = PROBE_TIMEOUT_SECONDS) -> list[str]:
    """One command probing every ``(ipv4, port)``: ``nc`` for one host, else ``sh -c`` of one ``nc`` per host."""
    by_host: dict[str, list[int]] = {}
    for host, port in targets:
        ipaddress.IPv4Address(host)  # ValueError for anything but a literal address
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
        by_host.setdefault(host, [])
        if port not in by_host[host]:
            by_host[host].append(port)
    if not by_host:
        raise ValueError("nothing to probe")
    commands = [["nc", "-z", "-v", f"-w{timeout}", host, *map(str, sorted(ports))] for host, ports in by_host.items()]
    if len(commands) == 1:
        return commands[0]
    return ["sh", "-c", "; ".join(shlex.join(c) for c in commands)]


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


def chain_check_argv(chain: str, iptables: Sequence[str]) -> list[str]:
    return [*iptables, "-t", "nat", "-S", chain]


def chain_create_argv(chain: str, iptables: Sequence[str]) -> list[str]:
    return [*iptables, "-t", "nat", "-N", chain]


def jump_check_argv(hook: str, chain: str, iptables: Sequence[str]) -> list[str]:
    return [*iptables, "-t", "nat", "-C", hook, "-j", chain]


def jump_insert_argv(hook: str, chain: str, iptables: Sequence[str]) -> list[str]:
    return [*iptables, "-t", "nat", "-I", hook, "1", "-j", chain]


CHAINS = ((DNAT_CHAIN, "PREROUTING"), (SNAT_CHAIN, "POSTROUTING"))


def _line(op: str, chain: str, args: list[str]) -> str:
    # iptables-restore honours double quotes; only the comment (a restricted job id) can need them
    return " ".join([op, chain, *(f'"{a}"' if a.startswith("bwvisu:") else a for a in args)])


def edit_input(
    *,
    add: Iterable[ForwardRule] = (),
    delete_dnat: Iterable[ForwardRule] = (),
    delete_masquerade: Iterable[ForwardRule] = (),
) -> str:
    """One ``iptables-restore --noflush`` transaction: the listed deletions, then both rules of each addition."""
    lines = ["*nat"]
    lines += [_line("-D", DNAT_CHAIN, dnat_rule_args(r)) for r in delete_dnat]
    lines += [_line("-D", SNAT_CHAIN, masquerade_rule_args(r)) for r in delete_masquerade]
    for rule in add:
        lines.append(_line("-A", DNAT_CHAIN, dnat_rule_args(rule)))
        lines.append(_line("-A", SNAT_CHAIN, masquerade_rule_args(rule)))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
