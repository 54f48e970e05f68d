"""Gateway command builders and parsers: probes, name resolution, restore edits; the simulator's getent."""

from __future__ import annotations

import shlex

import pytest

from runner.gateway import commands
from runner.gateway.iptables import ForwardRule
from simulator.commands import CommandContext
from simulator.netdb import getent_command

pytestmark = pytest.mark.unit


def test_probe_of_one_host_is_one_nc_with_every_port() -> None:
    argv = commands.probe_argv([("10.0.0.1", 50002), ("10.0.0.1", 50001), ("10.0.0.1", 50002)])
    assert argv == ["nc", "-z", "-v", "-w1", "10.0.0.1", "50001", "50002"]


def test_probe_of_several_hosts_is_one_sh_script_of_quoted_nc_calls() -> None:
    argv = commands.probe_argv([("10.0.0.1", 50001), ("10.0.0.2", 50001)])
    assert argv[:2] == ["sh", "-c"]
    assert [shlex.split(part) for part in argv[2].split("; ")] == [
        ["nc", "-z", "-v", "-w1", "10.0.0.1", "50001"],
        ["nc", "-z", "-v", "-w1", "10.0.0.2", "50001"],
    ]


@pytest.mark.parametrize("host", ["vis01", "10.0.0.1; reboot", "$(id)", ""])
def test_probe_accepts_only_ipv4_literals(host: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ipaddress' message varies
        commands.probe_argv([(host, 50000)])


def test_request_probe_backgrounds_one_nc_per_host_under_one_overall_timeout() -> None:
    argv = commands.request_probe_argv(
        [("10.0.0.1", 50002), ("10.0.0.2", 50001), ("10.0.0.1", 50001), ("10.0.0.2", 50002)], deadline=5
    )
    assert argv == [
        "timeout",
        "5",
        "sh",
        "-c",
        "nc -z -v -w1 10.0.0.1 50001 50002 & nc -z -v -w1 10.0.0.2 50001 50002 & wait",
    ]


def test_request_probe_of_one_host_is_still_bounded() -> None:
    argv = commands.request_probe_argv([("10.0.0.1", 50001)], deadline=0.5)
    assert argv == ["timeout", "0.5", "sh", "-c", "nc -z -v -w1 10.0.0.1 50001 & wait"]
    assert commands.request_probe_argv([("10.0.0.1", 50001)])[1] == str(commands.REQUEST_PROBE_DEADLINE)


def test_request_probe_of_many_hosts_starts_a_bounded_number_of_probes_at_once() -> None:
    hosts = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]
    argv = commands.request_probe_argv([(h, 50001) for h in hosts], parallel=16)
    script = argv[-1]
    assert argv[:4] == ["timeout", str(commands.REQUEST_PROBE_DEADLINE), "sh", "-c"]
    background = script.split(" & ")
    assert background[-1] == "wait"
    assert len(background) == 17
    probed: list[str] = []
    for job in background[:-1]:
        assert job.startswith("( ")
        assert job.endswith(" )")
        calls = [shlex.split(call) for call in job[2:-2].split("; ")]
        assert all(call[:4] == ["nc", "-z", "-v", "-w1"] and call[5:] == ["50001"] for call in calls)
        assert len(calls) in {6, 7}  # 100 hosts over 16 lanes, evenly
        probed += [call[4] for call in calls]
    assert sorted(probed) == sorted(hosts)


@pytest.mark.parametrize("host", ["vis01", "10.0.0.1 & reboot", "$(id)", "", "::1"])
def test_request_probe_accepts_only_ipv4_literals(host: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ipaddress' message varies
        commands.request_probe_argv([(host, 50000)])


@pytest.mark.parametrize(
    ("targets", "deadline"),
    [
        ([("10.0.0.1", 0)], 5.0),
        ([("10.0.0.1", 65536)], 5.0),
        ([], 5.0),
        ([("10.0.0.1", 50000)], 0.0),
        ([("10.0.0.1", 50000)], -1.0),
        ([("10.0.0.1", 50000)], float("nan")),
        ([("10.0.0.1", 50000)], 86400.0),
    ],
)
def test_request_probe_refuses_bad_ports_and_deadlines(targets: list[tuple[str, int]], deadline: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - one check per argument
        commands.request_probe_argv(targets, deadline=deadline)


def test_parse_probe_reads_netcat_openbsd_verbose_lines() -> None:
    stderr = (
        "Connection to 10.0.0.1 50001 port [tcp/*] succeeded!\n"
        "nc: connect to 10.0.0.1 port 50002 (tcp) failed: Connection refused\n"
        "Connection to 10.0.0.2 22 port [tcp/ssh] succeeded!\n"
    )
    assert commands.parse_probe(stderr) == {("10.0.0.1", 50001), ("10.0.0.2", 22)}


def test_parse_probe_reads_successes_interleaved_with_half_written_failures() -> None:
    # seen from parallel ncs on Debian 12: a failure's two writes with another nc's success line between them
    stderr = (
        "nc: connect to 172.27.0.4 port 47031 (tcp) failedConnection to 172.27.0.5 47030 port [tcp/*] succeeded!\n"
        ": Connection refused\n"
        "nc: connect to 172.27.0.4 port 47032 (tcp) failednc: connect to 172.27.0.6 port 47030 (tcp) failed"
        ": Connection refused\n: Connection refused\n"
    )
    assert commands.parse_probe(stderr) == {("172.27.0.5", 47030)}


def test_parse_ahostsv4_maps_names_to_their_first_address() -> None:
    output = (
        "10.1.0.5        STREAM vis01-ib0.cluster.example\n10.1.0.5        DGRAM  \n10.1.0.5        RAW    \n"
        "10.1.0.6        STREAM vis02-ib0\n10.1.0.6        DGRAM  \n"
    )
    assert commands.parse_ahostsv4(output, ["vis01-ib0", "vis02-ib0"]) == {
        "vis01-ib0": "10.1.0.5",
        "vis02-ib0": "10.1.0.6",
    }
    assert commands.parse_ahostsv4(output.splitlines(keepends=True)[3], ["vis01-ib0", "vis02-ib0"]) == {
        "vis02-ib0": "10.1.0.6"
    }


def test_edit_input_deletes_halves_independently_and_adds_both() -> None:
    rule = ForwardRule("j-1", 50001, "10.0.0.1", 50001)
    text = commands.edit_input(add=[rule], delete_masquerade=[ForwardRule("j-0", 1, "10.0.0.2", 50000)])
    lines = text.splitlines()
    assert lines[0] == "*nat"
    assert lines[-1] == "COMMIT"
    assert lines[1].startswith("-D BWVISU-POST -d 10.0.0.2/32")
    assert '--comment "bwvisu:j-0"' in lines[1]
    assert lines[2].startswith("-A BWVISU -p tcp")
    assert lines[3].startswith("-A BWVISU-POST")
    assert len(lines) == 5


async def test_sim_getent_ahostsv4_resolves_and_exits_2_for_unknown_names() -> None:
    ctx = CommandContext(node=None, user="bwvisu", resolve={"sim-c001": "127.9.0.1"}.__getitem__)
    result = await getent_command(ctx, ["getent", "ahostsv4", "sim-c001", "ghost"], b"")
    assert result.exit_status == 2
    assert commands.parse_ahostsv4(result.stdout, ["sim-c001", "ghost"]) == {"sim-c001": "127.9.0.1"}
