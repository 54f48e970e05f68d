"""The gateway helper (``bwvisu-forward``): what it accepts is what the runner sends, and every other request is
refused with its reason and status before iptables runs."""

from __future__ import annotations

import ipaddress
from collections.abc import Generator
from pathlib import Path

import pytest

from bwvisu_site.gateway import bwvisu_forward as fwd
from runner.gateway import commands
from runner.gateway.iptables import ForwardRule
from tests.site_forward_support import LIMITS, RULE, restore_text, write_config

pytestmark = pytest.mark.unit

DNAT = '-p tcp -m tcp --dport 50001 -m comment --comment "bwvisu:job-1" -j DNAT --to-destination 10.10.3.4:5901'
MASQ = '-d 10.10.3.4/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:job-1" -j MASQUERADE'


def refusal(data: bytes) -> str:
    with pytest.raises(fwd.Refusal) as caught:
        fwd.validate_restore(data, LIMITS)
    assert caught.value.status == fwd.EXIT_REFUSED
    return str(caught.value)


def test_what_the_runner_sends_is_accepted_unchanged() -> None:
    other = ForwardRule("a.B_c-9", 60000, "10.20.1.255", 65535)
    for text in (
        commands.edit_input(add=[RULE, other]),
        commands.edit_input(delete_dnat=[RULE], delete_masquerade=[other], add=[other]),
        commands.edit_input(),
    ):
        assert fwd.validate_restore(text.encode(), LIMITS) == text
    assert fwd.validate_restore(b"*nat\nCOMMIT", LIMITS) == "*nat\nCOMMIT\n"


def test_deletions_may_name_rules_outside_the_limits() -> None:
    # so the runner can remove its rules after a site narrowed the port range or the networks
    stale = ForwardRule("old", 40000, "192.168.9.9", 22)
    text = commands.edit_input(delete_dnat=[stale], delete_masquerade=[stale])
    assert fwd.validate_restore(text.encode(), LIMITS) == text
    with pytest.raises(fwd.Refusal, match="outside"):
        fwd.validate_restore(commands.edit_input(add=[stale]).encode(), LIMITS)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", "line 2: chain 'INPUT' is not the runner's accounting chain"),
        (b"*raw\nCOMMIT\n", "line 1: table 'raw' is not allowed"),
        (b"-A BWVISU -j ACCEPT\nCOMMIT\n", "line 1: '-A BWVISU -j ACCEPT' is not allowed: the input must start"),
        (restore_text(f"-A PREROUTING {DNAT}"), "line 2: chain 'PREROUTING' is not the runner's"),
        (restore_text(f"-A INPUT {DNAT}"), "chain 'INPUT' is not the runner's"),
        (restore_text("-A"), "line 2: chain '' is not the runner's"),
        (restore_text("-F"), "line 2: command '-F' is not allowed: only -A and -D"),
        (restore_text("-F BWVISU"), "command '-F' is not allowed"),
        (restore_text("--flush BWVISU"), "command '--flush' is not allowed"),
        (restore_text("-X BWVISU"), "command '-X' is not allowed"),
        (restore_text("-P PREROUTING DROP"), "command '-P' is not allowed"),
        (restore_text("-N EVIL"), "command '-N' is not allowed"),
        (restore_text(f"-I BWVISU 1 {DNAT}"), "command '-I' is not allowed"),
        (restore_text(f"-R BWVISU 1 {DNAT}"), "command '-R' is not allowed"),
        (restore_text("-D BWVISU 1"), "the rule carries no job tag"),
        (restore_text(":BWVISU - [0:0]"), "chain declarations are not allowed"),
        (restore_text(":PREROUTING DROP [0:0]"), "chain declarations are not allowed"),
        (restore_text("# a comment"), "line 2: '# a comment' is not an -A or -D line"),
        (restore_text(""), "line 2: empty lines are not allowed"),
        (restore_text(f"-A BWVISU --modprobe=/tmp/x {DNAT}"), "option '--modprobe' is not allowed"),
        (restore_text(f"-A BWVISU -M /tmp/x {DNAT}"), "option '-M' is not allowed"),
        (restore_text(f"-A BWVISU {DNAT} -m owner --uid-owner 0"), "match 'owner' is not allowed"),
        (restore_text(f"-A BWVISU -m state {DNAT}"), "match 'state' is not allowed"),
        (restore_text(f"-A BWVISU -s 1.2.3.4 {DNAT}"), "option '-s' is not allowed"),
        (restore_text(f"-A BWVISU -i eth0 {DNAT}"), "option '-i' is not allowed"),
        (restore_text(f"-A BWVISU ! {DNAT}"), "negation (!) is not allowed"),
        (restore_text(f"-A BWVISU {DNAT.replace('-j DNAT', '-j LOG')}"), "target 'LOG' is not allowed in BWVISU"),
        (restore_text(f"-A BWVISU {DNAT.replace('-j DNAT', '-g OTHER')}"), "option '-g' is not allowed"),
        (restore_text('-A BWVISU -m comment --comment "bwvisu:j" -j ACCEPT'), "target 'ACCEPT' is not allowed"),
        (restore_text('-A BWVISU -m comment --comment "bwvisu:j" -j RETURN'), "target 'RETURN' is not allowed"),
        (restore_text('-A BWVISU -m comment --comment "bwvisu:j" -j PREROUTING'), "target 'PREROUTING'"),
        (restore_text(f"-A BWVISU-POST {MASQ.replace('MASQUERADE', 'DNAT')}"), "target 'DNAT' is not allowed in"),
        (restore_text(f"-A BWVISU-POST {DNAT}"), "target 'DNAT' is not allowed in BWVISU-POST (only MASQUERADE)"),
        (restore_text(f"-A BWVISU {MASQ}"), "target 'MASQUERADE' is not allowed in BWVISU (only DNAT)"),
        (
            restore_text("-A BWVISU -p tcp -m tcp --dport 50001 -j DNAT --to-destination 10.10.3.4:5901"),
            'line 2: the rule carries no job tag (-m comment --comment "bwvisu:<job id>")',
        ),
        (restore_text(f"-A BWVISU {DNAT.replace('bwvisu:job-1', 'other:job-1')}"), 'comment "other:job-1" is not'),
        (restore_text(f"-A BWVISU {DNAT.replace('bwvisu:job-1', 'bwvisu:')}"), "is not a job tag"),
        (restore_text("-A BWVISU " + DNAT.replace('"bwvisu:job-1"', "bwvisu:job-1")), "is not a job tag"),
        (restore_text(f"-A BWVISU {DNAT.replace('--dport 50001', '--dport 49999')}"), "port 49999 is outside 50000"),
        (restore_text(f"-A BWVISU {DNAT.replace('--dport 50001', '--dport 60001')}"), "port 60001 is outside"),
        (restore_text(f"-A BWVISU {DNAT.replace('--dport 50001', '--dport 50000:60000')}"), "is not a port"),
        (restore_text(f"-A BWVISU {DNAT.replace('--dport 50001', '--dport 050001')}"), "is not a port"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:', '10.30.0.1:')}"), "10.30.0.1 is outside the compute"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:', '127.0.0.1:')}"), "127.0.0.1 is outside"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:5901', '10.10.3.4')}"), "must read ADDRESS:PORT"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:5901', '10.10.3.4:0')}"), "'0' is not a port"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:5901', 'host:5901')}"), "'host' is not an IPv4"),
        (restore_text(f"-A BWVISU {DNAT.replace('10.10.3.4:5901', '10.10.3.4:5901-5902')}"), "is not a port"),
        (restore_text(f"-A BWVISU-POST {MASQ.replace('10.10.3.4/32', '10.10.0.0/16')}"), "-d must name one host"),
        (restore_text(f"-A BWVISU-POST {MASQ.replace('10.10.3.4/32', '8.8.8.8/32')}"), "8.8.8.8 is outside"),
        (restore_text(f"-A BWVISU {DNAT} -j DNAT"), "not the runner's DNAT rule form"),
        (restore_text(f"-A BWVISU {DNAT.replace('-p tcp', '-p udp')}"), "not the runner's DNAT rule form"),
        (restore_text(f"-A BWVISU  {DNAT}"), "words must be separated by single spaces"),
        (restore_text(f"-A BWVISU\t{DNAT}"), "line 2: control character 0x09"),
        (restore_text(f"-A BWVISU {DNAT}\r"), "control character 0x0d"),
        (restore_text(f"-A BWVISU {DNAT}\0"), "control character 0x00"),
        (restore_text(f"-A BWVISU {DNAT} " + "x" * 600), "line 2: longer than 512 characters"),
        ("*nat\n-A BWVISU é\nCOMMIT\n".encode(), "input is not ASCII (byte 0xc3 at offset 15)"),
        (b"*nat\n-A BWVISU x\n", "line 2: the rule carries no job tag"),
        (b"*nat\n", "line 1: COMMIT missing at the end of the *nat block"),
        (b"", "input is empty"),
        (b"*nat\nCOMMIT\n*nat\nCOMMIT\n", "line 3: nothing may follow COMMIT but one *filter block"),
        (b"*nat\nCOMMIT\n*filter\n-F\nCOMMIT\n", "line 4: command '-F' is not allowed"),
        (b"*nat\n*filter\n-F\nCOMMIT\n", "line 2: a second table block is not allowed"),
        (b"*nat\nCOMMIT\n\n", "line 3: empty lines are not allowed"),
    ],
)
def test_refusals_name_the_line_and_the_reason(data: bytes, reason: str) -> None:
    assert reason in refusal(data)


def test_input_size_is_bounded() -> None:
    assert "larger than" in refusal(b"*nat\n" + b"x" * fwd.MAX_INPUT_BYTES)


def test_a_later_bad_line_refuses_the_whole_input() -> None:
    good = commands.edit_input(add=[RULE]).replace("COMMIT\n", "")
    assert "line 4: command '-F'" in refusal(f"{good}-F\nCOMMIT\n".encode())


def test_command_lines() -> None:
    assert fwd.parse_args(["ensure-chains"]) == fwd.Request("ensure-chains")
    assert fwd.parse_args(["restore"]) == fwd.Request("restore")
    assert fwd.parse_args(["list", "BWVISU"]) == fwd.Request("list", "BWVISU")
    malformed = [
        [], ["save"], ["save", "-f", "/etc/x"], ["restore", "--noflush"], ["list"], ["ensure-chains", "x"],
        ["list", "BWVISU", "-t", "filter"], ["iptables-save", "-f", "/tmp/x"], ["--modprobe=/tmp/x"],
    ]  # fmt: skip
    for argv in malformed:
        with pytest.raises(fwd.UsageRefusal, match="usage: bwvisu-forward ensure-chains"):
            fwd.parse_args(argv)
    fwd.check_request(fwd.Request("list", "BWVISU-POST"), LIMITS)
    for chain in ("PREROUTING", "POSTROUTING", "INPUT", "OUTPUT", "bwvisu", ""):
        with pytest.raises(fwd.Refusal, match=f"chain '{chain}' is not the runner's") as caught:
            fwd.check_request(fwd.Request("list", chain), LIMITS)
        assert caught.value.status == fwd.EXIT_REFUSED


def drive(
    steps: Generator[list[str], int, str | None], present: set[tuple[str, ...]]
) -> tuple[list[list[str]], str | None]:
    asked = []
    try:
        argv = next(steps)
        while True:
            asked.append(argv)
            argv = steps.send(0 if tuple(argv[3:]) in present else 1)
    except StopIteration as done:
        return asked, done.value


def test_ensure_chains_declares_only_what_is_missing() -> None:
    asked, text = drive(fwd.ensure_steps(LIMITS), set())
    assert asked == [
        ["/usr/sbin/iptables", "-t", "nat", "-S", "BWVISU"],
        ["/usr/sbin/iptables", "-t", "nat", "-S", "BWVISU-POST"],
    ]
    assert text == (
        "*nat\n:BWVISU - [0:0]\n:BWVISU-POST - [0:0]\n"
        "-I PREROUTING 1 -j BWVISU\n-I POSTROUTING 1 -j BWVISU-POST\nCOMMIT\n"
    )
    chains: set[tuple[str, ...]] = {("-S", "BWVISU"), ("-S", "BWVISU-POST")}
    asked, text = drive(fwd.ensure_steps(LIMITS), chains | {("-C", "POSTROUTING", "-j", "BWVISU-POST")})
    assert asked[1] == ["/usr/sbin/iptables", "-t", "nat", "-C", "PREROUTING", "-j", "BWVISU"]
    assert text == "*nat\n-I PREROUTING 1 -j BWVISU\nCOMMIT\n"  # an existing chain is never declared (flushed)
    everything = chains | {("-C", "PREROUTING", "-j", "BWVISU"), ("-C", "POSTROUTING", "-j", "BWVISU-POST")}
    assert drive(fwd.ensure_steps(LIMITS), everything)[1] is None


def test_config_round_trip_and_refusals() -> None:
    assert fwd.parse_config(fwd.render_config(LIMITS)) == LIMITS
    shipped = fwd.parse_config(Path(fwd.__file__).with_name("forward.conf").read_text())
    assert shipped == fwd.Limits(50000, 60000, (ipaddress.IPv4Network("10.10.0.0/16"),))
    minimal = fwd.parse_config("# site\n[forward]\nports = 50000-50010\ncompute-networks = 10.1.0.0/16, 10.2.0.0/16\n")
    assert (minimal.port_min, minimal.port_max, minimal.dnat_chain, minimal.iptables) == (
        50000, 50010, "BWVISU", "/usr/sbin/iptables")  # fmt: skip
    assert [str(n) for n in minimal.networks] == ["10.1.0.0/16", "10.2.0.0/16"]
    base = "[forward]\nports = 50000-60000\ncompute-networks = 10.0.0.0/8\n"
    for text, reason in [
        ("", "exactly one section"),
        ("[forward]\n[other]\n", "exactly one section"),
        ("ports = 1-2\n", "cannot parse"),
        ("[forward]\nports = 50000-60000\n", "required"),
        (base + "portz = 1\n", "unknown keys: portz"),
        (base.replace("50000-60000", "60000-50000"), "not a range"),
        (base.replace("50000-60000", "0-10"), "must read MIN-MAX"),
        (base.replace("50000-60000", "50000"), "must read MIN-MAX"),
        (base.replace("50000-60000", "1-70000"), "not a range"),
        (base.replace("10.0.0.0/8", ""), "names no network"),
        (base.replace("10.0.0.0/8", "10.0.0.1/8"), "has host bits set"),
        (base.replace("10.0.0.0/8", "0.0.0.0/0"), "would allow forwards anywhere"),
        (base.replace("10.0.0.0/8", "fd00::/8"), "compute-networks"),
        (base + "dnat-chain = PREROUTING\n", "not a user chain's name"),
        (base + "dnat-chain = -F\n", "not a user chain's name"),
        (base + "snat-chain = BWVISU\n", "must differ"),
        (base + "iptables = iptables\n", "absolute path"),
    ]:
        with pytest.raises(fwd.ConfigRefusal, match=reason):
            fwd.parse_config(text)


def test_config_must_be_writable_by_its_owner_only(tmp_path: Path) -> None:
    path = write_config(tmp_path, fwd.render_config(LIMITS))
    assert fwd.load_config(path) == LIMITS
    path.chmod(0o664)
    with pytest.raises(fwd.ConfigRefusal, match="writable by no one else"):
        fwd.load_config(path)
    path.chmod(0o644)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(fwd.ConfigRefusal, match="writable by no one else"):
            fwd.load_config(path)
    finally:
        tmp_path.chmod(0o700)
    with pytest.raises(fwd.ConfigRefusal, match="cannot read"):
        fwd.load_config(tmp_path / "missing.conf")
