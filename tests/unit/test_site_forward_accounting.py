"""The gateway helper's counting rules (idle sessions): the runner's ``*filter`` block, the accounting chain's
set-up and counter listing are accepted; anything else in the filter table is refused before iptables runs."""

from __future__ import annotations

import pytest

from bwvisu_site.gateway import bwvisu_forward as fwd
from runner.gateway import commands
from runner.gateway.access import ForwardHelper
from runner.gateway.iptables import ForwardRule
from tests.site_forward_support import LIMITS, RULE

pytestmark = pytest.mark.unit

COUNT = '-d 10.10.3.4/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:job-1"'


def filter_text(*lines: str) -> bytes:
    return ("\n".join(["*filter", *lines, "COMMIT"]) + "\n").encode()


def test_what_the_runner_sends_with_counting_rules_is_accepted_unchanged() -> None:
    stale = ForwardRule("old", 1, "192.168.9.9", 22)  # deleting may name rules outside the limits
    for text in (
        commands.edit_input(add=[RULE], add_accounting=[RULE]),
        commands.edit_input(delete_dnat=[RULE], delete_masquerade=[RULE], delete_accounting=[RULE, stale]),
        commands.edit_input(add_accounting=[RULE]),
    ):
        assert fwd.validate_restore(text.encode(), LIMITS) == text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (filter_text(f"-A BWVISU-ACCT {COUNT} -j DROP"), "a counting rule has no target (-j is not allowed)"),
        (filter_text(f"-A BWVISU-ACCT {COUNT} -j ACCEPT"), "a counting rule has no target"),
        (filter_text(f"-A BWVISU-ACCT {COUNT} -g FORWARD"), "a counting rule has no target (-g"),
        (filter_text(f"-A FORWARD {COUNT}"), "line 2: chain 'FORWARD' is not the runner's accounting chain"),
        (filter_text(f"-A BWVISU {COUNT}"), "chain 'BWVISU' is not the runner's accounting chain"),
        (filter_text("-Z BWVISU-ACCT"), "command '-Z' is not allowed"),
        (filter_text("-F BWVISU-ACCT"), "command '-F' is not allowed"),
        (filter_text("-I FORWARD 1 -j ACCEPT"), "command '-I' is not allowed"),
        (filter_text(":BWVISU-ACCT - [0:0]"), "chain declarations are not allowed"),
        (filter_text(f"-A BWVISU-ACCT {COUNT.replace('10.10.3.4/32', '8.8.8.8/32')}"), "8.8.8.8 is outside"),
        (filter_text(f"-A BWVISU-ACCT {COUNT.replace('/32', '/16')}"), "-d must name one host"),
        (filter_text(f"-A BWVISU-ACCT {COUNT.replace('--dport 5901', '--dport 0')}"), "'0' is not a port"),
        (filter_text(f"-A BWVISU-ACCT {COUNT.replace('bwvisu:job-1', 'other')}"), "is not a job tag"),
        (filter_text(f"-A BWVISU-ACCT -s 1.2.3.4 {COUNT}"), "option '-s' is not allowed"),
        (filter_text(f"-A BWVISU-ACCT {COUNT} -m owner --uid-owner 0"), "match 'owner' is not allowed"),
        (filter_text(f"-A BWVISU-ACCT ! {COUNT}"), "negation (!) is not allowed"),
        (filter_text(f"-A BWVISU-ACCT {COUNT} -c 0 0"), "option '-c' is not allowed"),  # no counters set
        (filter_text(f"-A BWVISU-ACCT {COUNT.replace('-p tcp -m tcp ', '')}"), "not the runner's counting rule"),
        (b"*filter\nCOMMIT\n*nat\nCOMMIT\n", "line 3: nothing may follow COMMIT but one *filter block"),
        (b"*filter\nCOMMIT\n*filter\nCOMMIT\n", "line 3: nothing may follow COMMIT"),
        (b"*filter\n", "line 1: COMMIT missing at the end of the *filter block"),
        (b"*mangle\nCOMMIT\n", "line 1: table 'mangle' is not allowed"),
    ],
)
def test_anything_else_in_the_filter_table_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(fwd.Refusal) as caught:
        fwd.validate_restore(data, LIMITS)
    assert caught.value.status == fwd.EXIT_REFUSED
    assert reason in str(caught.value)


def test_the_runners_accounting_commands_are_the_helpers() -> None:
    helper = ForwardHelper("/usr/local/sbin/bwvisu-forward")
    [(_, ensure)] = helper.accounting_setup_steps()
    assert fwd.parse_args(ensure[3:]) == fwd.Request("ensure-accounting")
    counters = fwd.parse_args(helper.counters_argv()[3:])
    assert counters == fwd.Request("counters", "BWVISU-ACCT")
    fwd.check_request(counters, LIMITS)
    assert fwd.counters_argv(LIMITS) == ["/usr/sbin/iptables", "-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"]
    for chain in ("FORWARD", "INPUT", "BWVISU", "BWVISU-POST"):
        with pytest.raises(fwd.Refusal, match="is not the runner's accounting chain"):
            fwd.check_request(fwd.Request("counters", chain), LIMITS)
    for argv in (["counters"], ["counters", "BWVISU-ACCT", "-Z"], ["ensure-accounting", "x"], ["zero"]):
        with pytest.raises(fwd.UsageRefusal):
            fwd.parse_args(argv)


def drive(present: set[tuple[str, ...]]) -> tuple[list[list[str]], str | None]:
    steps, asked = fwd.accounting_steps(LIMITS), []
    try:
        argv = next(steps)
        while True:
            asked.append(argv)
            argv = steps.send(0 if tuple(argv[3:]) in present else 1)
    except StopIteration as done:
        return asked, done.value


def test_ensure_accounting_declares_only_what_is_missing() -> None:
    asked, text = drive(set())
    assert asked == [["/usr/sbin/iptables", "-t", "filter", "-S", "BWVISU-ACCT"]]
    assert text == "*filter\n:BWVISU-ACCT - [0:0]\n-I FORWARD 1 -j BWVISU-ACCT\nCOMMIT\n"
    asked, text = drive({("-S", "BWVISU-ACCT")})
    assert asked[1] == ["/usr/sbin/iptables", "-t", "filter", "-C", "FORWARD", "-j", "BWVISU-ACCT"]
    assert text == "*filter\n-I FORWARD 1 -j BWVISU-ACCT\nCOMMIT\n"  # an existing chain is never declared (flushed)
    assert drive({("-S", "BWVISU-ACCT"), ("-C", "FORWARD", "-j", "BWVISU-ACCT")})[1] is None


def test_the_accounting_chains_name_is_configurable_and_checked() -> None:
    base = "[forward]\nports = 50000-60000\ncompute-networks = 10.10.0.0/16\n"
    assert fwd.parse_config(base + "accounting-chain = RUNNER-ACCT\n").accounting_chain == "RUNNER-ACCT"
    assert fwd.parse_config(base).accounting_chain == "BWVISU-ACCT"
    for bad in ("FORWARD", "-Z", "a b"):
        with pytest.raises(fwd.ConfigRefusal, match="not a user chain's name"):
            fwd.parse_config(base + f"accounting-chain = {bad}\n")
