"""Counting forwarded traffic: what the filter table's ``FORWARD`` hook does to a rule's packet and byte counters.

A forwarder reports each piece of a user's traffic after DNAT (to ``address:port`` on a compute node);
:func:`count_forwarded` walks ``FORWARD`` as netfilter does (following jumps into user chains, stopping at
``ACCEPT``/``DROP``/``REJECT``, leaving a chain at ``RETURN``) and adds to the counters of every rule that
matches on the way, including rules without a target, which only count.

Modelling limits: as in :mod:`simulator.dnat`, source address, interfaces and ``--sport`` count as matching; the
walk visits every rule of the chains it enters (fine for the few rules a test or an idle-session run has).
Each piece read from the client counts as one packet of its payload plus 40 bytes of IPv4 and TCP headers;
a new connection adds its SYN, one packet of 60 bytes.
"""

from __future__ import annotations

from simulator.dnat import rule_matches
from simulator.iptables_table import Netfilter

HEADER_BYTES = 40
SYN_BYTES = 60
_TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT"})
_MAX_DEPTH = 64


def count_forwarded(nf: Netfilter, target: tuple[str, int], packets: int, size: int) -> None:
    """Add ``packets`` packets of ``size`` bytes in all to each rule TCP forwarded to ``target`` passes."""
    _walk(nf, "FORWARD", target, (packets, size), 0)


def _walk(nf: Netfilter, chain_name: str, target: tuple[str, int], amount: tuple[int, int], depth: int) -> str:
    chain = nf.tables["filter"].get(chain_name)
    if chain is None or depth > _MAX_DEPTH:
        return "fall"
    for node in chain.nodes():
        rule = node.rule
        if not rule_matches(rule, *target):
            continue
        node.packets += amount[0]
        node.bytes += amount[1]
        jump = rule.target
        if jump in _TERMINAL:
            return "stop"
        if jump == "RETURN":
            return "fall"
        if jump is not None and jump in nf.tables["filter"] and _walk(nf, jump, target, amount, depth + 1) == "stop":
            return "stop"
    return "fall"
