"""iptables command builders and parsers, checked on ``iptables -S`` output as real iptables prints it."""

from __future__ import annotations

import shlex

import pytest

from runner.gateway.commands import edit_input
from runner.gateway.iptables import (
    DNAT_CHAIN,
    ForwardRule,
    dnat_rule_args,
    list_command,
    parse_forward_rules,
    parse_masquerade_rules,
    restore_command,
)

pytestmark = pytest.mark.unit

RULE = ForwardRule("abc", 50001, "10.0.0.5", 5901)

# iptables 1.8.9 (nf_tables) -S BWVISU after adding RULE and one more, plus a foreign rule
NFT_OUTPUT = """\
-N BWVISU
-A BWVISU -p tcp -m tcp --dport 50001 -m comment --comment "bwvisu:abc" -j DNAT --to-destination 10.0.0.5:5901
-A BWVISU -p tcp -m tcp --dport 50002 -m comment --comment "bwvisu:j-2.x_y" -j DNAT --to-destination 10.0.0.6:5902
-A BWVISU -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.9:80
"""

# as kube-proxy's rules print (comment before the tcp match), with iptables-save -c counters
KUBE_STYLE = """\
*nat
:PREROUTING ACCEPT [0:0]
:BWVISU - [0:0]
-A PREROUTING -j BWVISU
[102:8638] -A BWVISU -p tcp -m comment --comment "bwvisu:k1" -m tcp --dport 50010 -j DNAT --to-destination 10.131.0.2:53
[0:0] -A BWVISU -s 10.131.0.4/32 -m comment --comment "bwvisu:k1" -j KUBE-MARK-MASQ
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
-A OTHER -p tcp -m tcp --dport 50011 -m comment --comment "bwvisu:k2" -j DNAT --to-destination 10.0.0.1:1
COMMIT
"""

POST_OUTPUT = """\
-N BWVISU-POST
-A BWVISU-POST -d 10.0.0.5/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:abc" -j MASQUERADE
-A BWVISU-POST -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
"""


def test_parse_nft_variant_output() -> None:
    assert parse_forward_rules(NFT_OUTPUT) == [
        ForwardRule("abc", 50001, "10.0.0.5", 5901),
        ForwardRule("j-2.x_y", 50002, "10.0.0.6", 5902),
    ]


def test_parse_is_order_independent_and_skips_foreign_rules() -> None:
    assert parse_forward_rules(KUBE_STYLE) == [ForwardRule("k1", 50010, "10.131.0.2", 53)]
    assert parse_forward_rules(KUBE_STYLE, chain="OTHER") == [ForwardRule("k2", 50011, "10.0.0.1", 1)]


@pytest.mark.parametrize(
    "line",
    [
        '-A BWVISU -p tcp -m tcp --dport 1 -m comment --comment "bwvisu:a" -j DNAT --to-destination 10.0.0.1',
        '-A BWVISU -p tcp -m tcp --dport 1 -m comment --comment "bwvisu:a" -j DNAT --to-destination ::1:5',
        '-A BWVISU -p tcp -m tcp -m comment --comment "bwvisu:a" -j DNAT --to-destination 10.0.0.1:5',
        '-A BWVISU -p tcp -m tcp --dport 1 -m comment --comment "bwvisu:a b" -j DNAT --to-destination 10.0.0.1:5',
        '-A BWVISU -p tcp -m tcp --dport 1 -m comment --comment "other" -j DNAT --to-destination 10.0.0.1:5',
        "-P PREROUTING ACCEPT",
        "",
    ],
)
def test_unparseable_or_foreign_rules_are_skipped(line: str) -> None:
    assert parse_forward_rules(line) == []


def test_parse_masquerade_rules() -> None:
    assert parse_masquerade_rules(POST_OUTPUT) == [("abc", "10.0.0.5", 5901)]


def test_builders_spell_rules_as_iptables_s_prints_them() -> None:
    line = shlex.join(["-A", DNAT_CHAIN, *dnat_rule_args(RULE)])
    assert line.replace("bwvisu:abc", '"bwvisu:abc"') == NFT_OUTPUT.splitlines()[1]


def test_list_and_restore_commands_are_argument_lists() -> None:
    assert list_command(DNAT_CHAIN) == ["iptables", "-t", "nat", "-S", "BWVISU"]
    assert restore_command(iptables_restore=["sudo", "-n", "iptables-restore"]) == [
        "sudo", "-n", "iptables-restore", "--noflush",
    ]  # fmt: skip


def test_edit_input_deletes_then_adds_in_one_transaction() -> None:
    old = ForwardRule("old", 50009, "10.0.0.7", 5900)
    text = edit_input(add=[RULE], delete_dnat=[old], delete_masquerade=[old])
    lines = text.splitlines()
    assert lines[0] == "*nat"
    assert lines[-1] == "COMMIT"
    assert [line.split()[:2] for line in lines[1:-1]] == [
        ["-D", "BWVISU"], ["-D", "BWVISU-POST"], ["-A", "BWVISU"], ["-A", "BWVISU-POST"],
    ]  # fmt: skip
    assert lines[3] == NFT_OUTPUT.splitlines()[1]
    assert lines[4] == POST_OUTPUT.splitlines()[1]
    assert not any(line.startswith(":") for line in lines)  # a chain declaration would flush the chain


def test_edit_input_round_trips_through_the_parser() -> None:
    rules = [ForwardRule(f"job-{i}", 50000 + i, f"10.0.{i // 250}.{i % 250 + 1}", 5900) for i in range(500)]
    text = edit_input(add=rules)
    assert parse_forward_rules(text) == rules
    assert parse_masquerade_rules(text) == [(r.job_id, r.internal_ip, r.internal_port) for r in rules]


@pytest.mark.parametrize(
    ("job_id", "ip", "port"),
    [
        ("a b", "10.0.0.1", 1),
        ('a"', "10.0.0.1", 1),
        ("-x", "10.0.0.1", 1),
        ("a", "::1", 1),
        ("a", "x", 1),
        ("a", "10.0.0.1", 0),
    ],
)
def test_unsafe_rules_cannot_be_built(job_id: str, ip: str, port: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ForwardRule(job_id, 50000, ip, port)
