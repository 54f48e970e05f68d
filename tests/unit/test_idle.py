"""Idle sessions, pure parts: the counting rules' text, parsing ``-S -v`` counters (captured on a real gateway),
the pool's one counter read, and the sweep's decisions (warn, clear, cancel) and rule reconciliation."""

from __future__ import annotations

import pytest

from runner.errors import CounterParseError, GatewayCommandFailed, GatewayOutputInvalid
from runner.gateway import commands
from runner.gateway.access import ForwardHelper, SudoIptables
from runner.gateway.iptables import Counted, ForwardRule, parse_counters
from runner.gateway.pool import Gateway, GatewayPool
from runner.idle import Action, IdlePolicy, counting_rule, decide, iso, parse_iso, reconcile_rules
from simulator.iptables_command import execute, parse_command
from simulator.iptables_counters import count_forwarded
from simulator.iptables_table import Netfilter
from tests.scripted import ScriptedRunner, answer

pytestmark = pytest.mark.unit

# iptables v1.8.9 (nf_tables) on the testbed's gateway image: `iptables -w -t filter -S BWVISU-ACCT -v`
REAL_COUNTERS = (
    "-N BWVISU-ACCT\n"
    '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -c 0 0\n'
    '-A BWVISU-ACCT -d 10.0.0.6/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:j2" -c 7 420\n'
)
RULE = ForwardRule("j1", 50001, "10.0.0.5", 5900)


def test_counters_parse_from_real_output() -> None:
    assert parse_counters(REAL_COUNTERS) == [
        Counted(ForwardRule("j1", 1, "10.0.0.5", 5900), 0, 0),
        Counted(ForwardRule("j2", 1, "10.0.0.6", 5901), 7, 420),
    ]


def test_an_administrators_own_rules_and_other_chains_are_skipped() -> None:
    text = REAL_COUNTERS + "-A BWVISU-ACCT -s 192.0.2.0/24 -c 3 100\n-A FORWARD -j BWVISU-ACCT -c 9 900\n"
    assert [c.rule.job_id for c in parse_counters(text)] == ["j1", "j2"]


@pytest.mark.parametrize(
    "line",
    [
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1"',  # no -v
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -c 7',
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -c x 4',
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -c -1 4',
        '-A BWVISU-ACCT -d 10.0.0.0/24 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -c 1 4',
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m comment --comment "bwvisu:j1" -c 1 4',
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -j DROP -c 1 4',
        '-A BWVISU-ACCT -d 10.0.0.5/32 -m comment --comment "bwvisu:j 1 -c 1 4',  # unbalanced quote
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 99999 -m comment --comment "bwvisu:j1" -c 1 4',
    ],
)
def test_a_tagged_rule_without_readable_counters_is_an_error_not_silence(line: str) -> None:
    with pytest.raises(CounterParseError):
        parse_counters("-N BWVISU-ACCT\n" + line + "\n")


def test_the_counting_rule_goes_into_its_own_filter_block_only_when_asked() -> None:
    assert commands.edit_input(add=[RULE]) == (
        "*nat\n"
        '-A BWVISU -p tcp -m tcp --dport 50001 -m comment --comment "bwvisu:j1" -j DNAT '
        "--to-destination 10.0.0.5:5900\n"
        '-A BWVISU-POST -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1" -j MASQUERADE\n'
        "COMMIT\n"
    )
    gone = counting_rule("j0", "10.0.0.9", 5800)
    assert commands.edit_input(add=[RULE], add_accounting=[RULE], delete_accounting=[gone]).endswith(
        "COMMIT\n*filter\n"
        '-D BWVISU-ACCT -d 10.0.0.9/32 -p tcp -m tcp --dport 5800 -m comment --comment "bwvisu:j0"\n'
        '-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment "bwvisu:j1"\n'
        "COMMIT\n"
    )
    assert commands.edit_input(add_accounting=[RULE]).startswith("*filter\n")  # no empty nat block


def test_the_counter_read_and_chain_set_up_per_access() -> None:
    sudo = SudoIptables()
    assert sudo.counters_argv() == ["sudo", "-n", "iptables", "-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"]
    assert sudo.accounting_setup_steps() == [
        (
            ["sudo", "-n", "iptables", "-t", "filter", "-S", "BWVISU-ACCT"],
            ["sudo", "-n", "iptables", "-t", "filter", "-N", "BWVISU-ACCT"],
        ),
        (
            ["sudo", "-n", "iptables", "-t", "filter", "-C", "FORWARD", "-j", "BWVISU-ACCT"],
            ["sudo", "-n", "iptables", "-t", "filter", "-I", "FORWARD", "1", "-j", "BWVISU-ACCT"],
        ),
    ]
    helper = ForwardHelper("/usr/local/sbin/bwvisu-forward")
    assert helper.counters_argv() == ["sudo", "-n", "/usr/local/sbin/bwvisu-forward", "counters", "BWVISU-ACCT"]


def _pool(node: ScriptedRunner) -> tuple[GatewayPool, Gateway]:
    p = GatewayPool([Gateway(node, "10.0.0.1", "192.0.2.1")], down_retry_after=30)
    p.accounting = True
    return p, p.gateways[0]


async def test_with_accounting_a_forward_and_its_counting_rule_are_one_restore() -> None:
    missing = answer(status=1, stderr="iptables: No chain/target/match by that name.\n")
    node = ScriptedRunner("gw").on(["sudo", "-n", "iptables", "-t", "filter", "-S"], missing)
    p, gw = _pool(node)
    await p.install(gw, [RULE])
    filter_calls = [c for c in node.calls if "filter" in c]
    assert filter_calls == [
        ["sudo", "-n", "iptables", "-t", "filter", "-S", "BWVISU-ACCT"],
        ["sudo", "-n", "iptables", "-t", "filter", "-N", "BWVISU-ACCT"],
        ["sudo", "-n", "iptables", "-t", "filter", "-C", "FORWARD", "-j", "BWVISU-ACCT"],
    ]  # the jump's check succeeded (status 0): no second one is inserted
    restores = [c for c in node.log if c.argv[:3] == ["sudo", "-n", "iptables-restore"]]
    assert len(restores) == 1
    assert restores[0].stdin == commands.edit_input(add=[RULE], add_accounting=[RULE])


async def test_counters_are_one_command_and_bad_output_is_a_mapped_error() -> None:
    node = ScriptedRunner("gw").on(["sudo", "-n", "iptables", "-w"], answer(REAL_COUNTERS))
    p, gw = _pool(node)
    assert [c.packets for c in await p.counters(gw)] == [0, 7]
    reads = [c for c in node.calls if "-v" in c]
    assert reads == [["sudo", "-n", "iptables", "-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"]]
    broken = ScriptedRunner("gw").on(["sudo", "-n", "iptables", "-w"], answer(REAL_COUNTERS.replace(" -c 7 420", "")))
    p, gw = _pool(broken)
    with pytest.raises(GatewayOutputInvalid) as caught:
        await p.counters(gw)
    assert "no counters in" in str(caught.value.internal)
    assert not p.is_down(gw)  # it answered
    failing = ScriptedRunner("gw").on(["sudo", "-n", "iptables", "-w"], answer(status=1, stderr="no chain\n"))
    p, gw = _pool(failing)
    with pytest.raises(GatewayCommandFailed):
        await p.counters(gw)


POLICY = IdlePolicy(timeout=600.0, warning=120.0)


@pytest.mark.parametrize(
    ("idle", "warned", "action"),
    [
        (0.0, False, Action.NONE),
        (479.0, False, Action.NONE),
        (480.0, False, Action.WARN),
        (500.0, True, Action.NONE),
        (10.0, True, Action.CLEAR),  # traffic after the warning
        (599.9, True, Action.NONE),
        (600.0, True, Action.CANCEL),
        (600.0, False, Action.CANCEL),  # a warning missed (e.g. a leader change) does not save the job
    ],
)
def test_the_sweeps_decision(idle: float, warned: bool, action: Action) -> None:
    assert decide(POLICY, idle_since=1000.0, now=1000.0 + idle, warned=warned) is action


def test_policy_in_minutes_and_sweep_interval() -> None:
    assert IdlePolicy.from_minutes(30, 5) == IdlePolicy(1800.0, 300.0)
    assert IdlePolicy.from_minutes(30, 5).interval == 30.0
    assert IdlePolicy.from_minutes(0.05, 0.02).interval == 0.2  # tests: a fraction of a minute


def test_times_are_iso_8601_utc_and_read_back() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert parse_iso(iso(1_800_000_000)) == 1_800_000_000
    assert parse_iso("yesterday") is None
    assert parse_iso(None) is None


def test_reconciling_counting_rules() -> None:
    keep, dup, old = (
        counting_rule("a", "10.0.0.5", 5900),
        counting_rule("a", "10.0.0.5", 5900),
        counting_rule("gone", "10.0.0.6", 5901),
    )
    missing = counting_rule("b", "10.0.0.7", 5902)
    present = [Counted(keep, 1, 1), Counted(dup, 1, 1), Counted(old, 5, 5)]
    add, delete = reconcile_rules(present, {keep, missing}, active={"a", "b"})
    assert add == [missing]
    assert delete == [dup, old]


def test_the_simulated_gateway_counts_forwarded_traffic_and_prints_it_as_iptables_does() -> None:
    nf = Netfilter()
    for line in (
        "-N BWVISU-ACCT",
        "-I FORWARD 1 -j BWVISU-ACCT",
        "-A BWVISU-ACCT -d 10.0.0.5/32 -p tcp -m tcp --dport 5900 -m comment --comment bwvisu:j1",
        "-A BWVISU-ACCT -d 10.0.0.6/32 -p tcp -m tcp --dport 5901 -m comment --comment bwvisu:j2",
    ):
        execute(nf, parse_command(["-t", "filter", *line.split(" ")]))
    count_forwarded(nf, ("10.0.0.6", 5901), 7, 420)
    count_forwarded(nf, ("10.0.0.7", 5901), 1, 60)  # another host: the jump counts it, no job rule does
    listed = execute(nf, parse_command(["-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"])).stdout
    assert listed == REAL_COUNTERS
    forward = execute(nf, parse_command(["-t", "filter", "-S", "FORWARD", "-v"])).stdout
    assert forward == "-P FORWARD ACCEPT -c 0 0\n-A FORWARD -j BWVISU-ACCT -c 8 480\n"


async def test_a_gateway_refusing_the_counting_chain_still_gets_its_forwards() -> None:
    helper = "/usr/local/sbin/bwvisu-forward"
    old = answer(status=64, stderr="bwvisu-forward: refused: usage: bwvisu-forward ensure-chains | list CHAIN\n")
    node = ScriptedRunner("gw").on(["sudo", "-n", helper, "ensure-accounting"], old)
    p = GatewayPool([Gateway(node, "10.0.0.1", "192.0.2.1")], down_retry_after=30, access=ForwardHelper(helper))
    p.accounting = True
    gw = p.gateways[0]
    await p.install(gw, [RULE])
    await p.install(gw, [ForwardRule("j2", 50002, "10.0.0.5", 5901)])  # not asked again before down_retry_after
    assert node.calls == [
        ["sudo", "-n", helper, "ensure-chains"],
        ["sudo", "-n", helper, "ensure-accounting"],
        ["sudo", "-n", helper, "restore"],
        ["sudo", "-n", helper, "restore"],
    ]
    assert all("*filter" not in (c.stdin or "") for c in node.log)
    with pytest.raises(GatewayCommandFailed):
        await p.counters(gw)  # the sweep sees the gateway as unread: its jobs are left alone
