"""``runner check``'s gateway rows for idle sessions and ephemeral ports, against scripted gateways."""

from __future__ import annotations

import pytest

from bwvisu_site.gateway import bwvisu_forward
from runner.check import HELPER_USAGE_STATUS, _bounded, _ephemeral_ports, _idle_counters, parse_port_range
from runner.gateway.access import gateway_access
from tests.scripted import ScriptedRunner, answer

pytestmark = pytest.mark.unit

HELPER = "/usr/local/sbin/bwvisu-forward"
COUNTED = '-A BWVISU-ACCT -d 10.10.3.4/32 -p tcp -m tcp --dport 50123 -m comment --comment "bwvisu:j1" -c 7 420\n'
OLD_HELPER = (
    "bwvisu-forward: refused: usage: bwvisu-forward ensure-chains | list CHAIN | restore (got 'counters BWVISU-ACCT')\n"
)


async def counters_row(node: ScriptedRunner, helper: str | None) -> tuple[bool | None, str]:
    row = await _bounded("idle-counters", node.name, 5, lambda: _idle_counters(node, helper))
    return row.ok, row.detail


async def ports_row(node: ScriptedRunner, low: int = 50000, high: int = 60000) -> tuple[bool | None, str]:
    row = await _bounded("ephemeral-ports", node.name, 5, lambda: _ephemeral_ports(node, low, high))
    return row.ok, row.detail


def test_old_helper_status_is_the_helpers_usage_status() -> None:
    assert bwvisu_forward.EXIT_USAGE == HELPER_USAGE_STATUS


@pytest.mark.parametrize("helper", [None, HELPER])
async def test_counters_read_with_the_sweeps_command_line(helper: str | None) -> None:
    node = ScriptedRunner().on("BWVISU-ACCT", answer(COUNTED))
    ok, detail = await counters_row(node, helper)
    assert ok is True
    assert "1 counting rules" in detail
    assert node.calls == [gateway_access(helper).counters_argv()]


@pytest.mark.parametrize("helper", [None, HELPER])
async def test_a_chain_not_created_yet_is_ok(helper: str | None) -> None:
    node = ScriptedRunner().on("BWVISU-ACCT", answer("", 1, "iptables: No chain/target/match by that name.\n"))
    ok, detail = await counters_row(node, helper)
    assert ok is True
    assert "not created yet" in detail


async def test_an_older_helper_fails_saying_nothing_is_counted() -> None:
    node = ScriptedRunner().on("counters", answer("", HELPER_USAGE_STATUS, OLD_HELPER))
    ok, detail = await counters_row(node, HELPER)
    assert ok is False
    assert "older bwvisu-forward" in detail
    assert "without counting" in detail
    assert "cancel no idle job" in detail


async def test_refused_sudo_fails_with_its_text() -> None:
    node = ScriptedRunner().on("sudo", answer("", 1, "sudo: a password is required\n"))
    ok, detail = await counters_row(node, None)
    assert ok is False
    assert "a password is required" in detail


async def test_counters_that_do_not_parse_fail() -> None:
    node = ScriptedRunner().on("BWVISU-ACCT", answer(COUNTED.replace(" -c 7 420", "")))
    ok, detail = await counters_row(node, HELPER)
    assert ok is False
    assert "unreadable" in detail


async def test_ephemeral_range_below_the_forwarding_range_is_ok() -> None:
    node = ScriptedRunner().on("cat", answer("32768\t49999\n"))
    ok, detail = await ports_row(node)
    assert ok is True
    assert "32768-49999" in detail
    assert node.calls == [["cat", "/proc/sys/net/ipv4/ip_local_port_range"]]


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("32768\t60999\n", '"32768 49999"'),  # Linux's default against the default keyholed-port-range
        ("55000\t65000\n", '"60001 65000"'),
        ("50000\t60000\n", '"60001 65535"'),
    ],
)
async def test_an_overlapping_range_fails_naming_both_and_the_fix(text: str, fix: str) -> None:
    node = ScriptedRunner().on("cat", answer(text))
    ok, detail = await ports_row(node)
    assert ok is False
    first, last = text.split()
    assert f"{first}-{last}" in detail
    assert "50000-60000" in detail
    assert f"net.ipv4.ip_local_port_range={fix}" in detail
    assert "keyholed-port-range outside it" in detail


@pytest.mark.parametrize("text", ["", "32768\n", "a b\n", "60999 32768\n", "1 2 3\n", "0 70000\n"])
async def test_an_unparsable_range_fails_with_the_text(text: str) -> None:
    assert parse_port_range(text) is None
    ok, detail = await ports_row(ScriptedRunner().on("cat", answer(text)))
    assert ok is False
    assert "unreadable" in detail
    assert repr(text.strip()) in detail


async def test_an_unreadable_file_fails_with_cats_answer() -> None:
    node = ScriptedRunner().on("cat", answer("", 1, "cat: /proc/sys/net/ipv4/ip_local_port_range: Permission denied\n"))
    ok, detail = await ports_row(node)
    assert ok is False
    assert "Permission denied" in detail
