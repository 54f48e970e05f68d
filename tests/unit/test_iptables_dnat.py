"""Which DNAT rule wins for a new connection: netfilter's traversal, answered from the port index."""

from __future__ import annotations

import shlex

import pytest

from simulator.dnat import DnatIndex, dnat_destination
from simulator.iptables_command import execute, parse_command
from simulator.iptables_table import Netfilter

pytestmark = pytest.mark.unit

GW = "127.0.9.1"


def setup(*lines: str) -> DnatIndex:
    nf = Netfilter()
    index = DnatIndex(nf)
    for line in lines:
        execute(nf, parse_command(["-t", "nat", *shlex.split(line)]))
    index.apply_changes()
    return index


def target(index: DnatIndex, port: int, address: str = GW) -> tuple[str, int] | None:
    rule = index.resolve(address, port)
    return None if rule is None else dnat_destination(rule, port)


def test_first_matching_rule_wins_through_a_jump() -> None:
    index = setup(
        "-N BW",
        "-A PREROUTING -j BW",
        "-A BW -p tcp --dport 5 -j DNAT --to-destination 10.0.0.1:1",
        "-A BW -p tcp --dport 5 -j DNAT --to-destination 10.0.0.2:2",
    )
    assert target(index, 5) == ("10.0.0.1", 1)
    assert target(index, 6) is None


def test_unreachable_chain_and_other_protocols_do_not_forward() -> None:
    index = setup(
        "-N BW",
        "-A BW -p tcp --dport 5 -j DNAT --to-destination 10.0.0.1:1",
        "-A PREROUTING -p udp --dport 6 -j DNAT --to-destination 10.0.0.1:1",
        "-A OUTPUT -p tcp --dport 7 -j DNAT --to-destination 10.0.0.1:1",
    )
    assert [target(index, p) for p in (5, 6, 7)] == [None, None, None]


def test_destination_address_and_earlier_accept_or_return() -> None:
    index = setup(
        "-N BW",
        "-A PREROUTING -p tcp --dport 9 -j ACCEPT",
        "-A PREROUTING -j BW",
        "-A PREROUTING -p tcp --dport 8 -j DNAT --to-destination 10.0.0.3",
        "-A BW -p tcp --dport 8 -j RETURN",
        "-A BW -p tcp --dport 9 -j DNAT --to-destination 10.0.0.1:1",
        "-A BW -d 127.0.9.2 -p tcp --dport 10 -j DNAT --to-destination 10.0.0.1:1",
    )
    assert target(index, 9) is None
    assert target(index, 8) == ("10.0.0.3", 8)
    assert target(index, 10) is None
    assert target(index, 10, "127.0.9.2") == ("10.0.0.1", 1)


def test_changes_report_affected_ports_or_everything() -> None:
    index = setup("-N BW")
    nf = index.netfilter
    execute(nf, parse_command(shlex.split("-t nat -A BW -p tcp --dport 5 -j ACCEPT")))
    assert index.apply_changes() == {5}
    execute(nf, parse_command(shlex.split("-t nat -A PREROUTING -j BW")))
    assert index.apply_changes() is None
    assert index.all_ports() == {5}
