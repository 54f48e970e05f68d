"""Which DNAT rule a new TCP connection to ``address:port`` hits, found without scanning every rule.

The nat table is indexed per chain by destination port (rules with ``--dport P``) plus the few rules that
carry no single port (jumps such as ``-A PREROUTING -j BWVISU``, port ranges, catch-all ACCEPT/RETURN).
:meth:`DnatIndex.resolve` walks PREROUTING like netfilter does, following jumps and RETURN, but visits
only the candidates for that port, so it costs O(candidates), not O(rules).

Modelling limits: source address, input interface and ``--sport`` are unknown before a connection
arrives and are treated as matching; a DNAT rule without a single ``--dport`` is kept but never made real.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from simulator.iptables_rules import Rule
from simulator.iptables_table import Netfilter

_TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT"})
_MAX_DEPTH = 64


def _port_matches(spec: str, port: int) -> bool:
    low, _, high = spec.partition(":")
    return int(low) <= port <= int(high or low)


def rule_matches(rule: Rule, address: str, port: int) -> bool:
    """Whether a TCP connection to ``address:port`` matches ``rule`` (unknowns count as matching)."""
    if rule.proto is not None and (rule.proto == "tcp") == ("-p" in rule.inverted):
        return False
    if rule.dst is not None:
        inside = ipaddress.IPv4Address(address) in ipaddress.IPv4Network(rule.dst)
        if inside == ("-d" in rule.inverted):
            return False
    for match in rule.matches:
        if match.name == "udp":
            return False
        for inv, opt, value in match.options:
            if opt == "--dport" and _port_matches(value, port) == inv:
                return False
    return True


def dnat_destination(rule: Rule, port: int) -> tuple[str, int]:
    """``--to-destination IP[:PORT[-PORT]]`` as an address; without a port DNAT keeps the original one."""
    value = rule.target_option("--to-destination") or ""
    host, _, ports = value.partition(":")
    return host, int(ports.split("-")[0]) if ports else port


class DnatIndex:
    """Per-chain port index over the nat table of a :class:`Netfilter`, updated from its change log."""

    def __init__(self, netfilter: Netfilter) -> None:
        self.netfilter = netfilter
        self.by_port: defaultdict[str, defaultdict[int, set[Rule]]] = defaultdict(lambda: defaultdict(set))
        self.portless: defaultdict[str, set[Rule]] = defaultdict(set)

    def apply_changes(self) -> set[int] | None:
        """Absorb the table's pending changes; return the ports whose outcome may differ, ``None`` for all."""
        changes, self.netfilter.changes = self.netfilter.changes, []
        ports: set[int] | None = set()
        nat = self.netfilter.tables["nat"]
        for table, chain_name, rule in changes:
            if table != "nat":
                continue
            chain = nat.get(chain_name)
            present = chain is not None and rule in chain.index
            port = rule.dport()
            if port is None:
                bucket = self.portless[chain_name]
                ports = None
            else:
                bucket = self.by_port[chain_name][port]
                if ports is not None:
                    ports.add(port)
            if present:
                bucket.add(rule)
            else:
                bucket.discard(rule)
        return ports

    def all_ports(self) -> set[int]:
        return {port for chains in self.by_port.values() for port, rules in chains.items() if rules}

    def resolve(self, address: str, port: int) -> Rule | None:
        """The DNAT rule a new connection to ``address:port`` hits, or ``None`` if none does."""
        outcome, rule = self._walk("PREROUTING", address, port, 0)
        return rule if outcome == "dnat" else None

    def _walk(self, chain_name: str, address: str, port: int, depth: int) -> tuple[str, Rule | None]:
        chain = self.netfilter.tables["nat"].get(chain_name)
        if chain is None or depth > _MAX_DEPTH:
            return "fall", None
        candidates = self.by_port[chain_name].get(port, set()) | self.portless[chain_name]
        for rule in sorted(candidates, key=lambda r: chain.order_key(r) or 0):
            if not rule_matches(rule, address, port):
                continue
            target = rule.target
            if target == "DNAT":
                return "dnat", rule
            if target in _TERMINAL:
                return "stop", None
            if target == "RETURN":
                return "return", None
            if target is not None and target in self.netfilter.tables["nat"]:
                outcome, hit = self._walk(target, address, port, depth + 1)
                if outcome in ("dnat", "stop"):
                    return outcome, hit
        return "fall", None
