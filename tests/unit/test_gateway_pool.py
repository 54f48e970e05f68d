"""Gateway choice: least-loaded healthy gateway; a gateway whose SSH fails is skipped until healthy again;
probes, bounded or not, and what a slow probe does (and does not do) to a gateway's health."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from runner.errors import ClusterUnavailable, GatewayCommandFailed, GatewayUnavailable, ProbeTimedOut
from runner.gateway import commands
from runner.gateway.access import ForwardHelper, SudoIptables, gateway_access
from runner.gateway.iptables import ForwardRule
from runner.gateway.pool import PROBE_SSH_SLACK, Gateway, GatewayPool
from tests.scripted import Answer, Call, ScriptedRunner, answer

pytestmark = pytest.mark.unit


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(n: int, clock: Clock) -> tuple[GatewayPool, list[ScriptedRunner]]:
    nodes = [ScriptedRunner(f"gw{i}") for i in range(n)]
    gateways = [Gateway(node, f"10.0.0.{i}", f"192.0.2.{i}") for i, node in enumerate(nodes)]
    return GatewayPool(gateways, down_retry_after=30, clock=clock), nodes


def placed(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"old-{ip}-{i}", ip) for ip, n in counts.items() for i in range(n)]


def test_choice_spreads_forwards_evenly_from_the_recorded_load() -> None:
    p, _ = pool(4, Clock())
    p.set_load(placed({"10.0.0.0": 5, "10.0.0.1": 2}))
    chosen = Counter(p.choose(f"j{i}").internal_ip for i in range(13))
    assert chosen == {"10.0.0.2": 5, "10.0.0.3": 5, "10.0.0.1": 3}
    assert set(p.load.values()) == {5}


def test_choices_not_yet_in_etcd_survive_a_load_refresh() -> None:
    # 30 requests choose at once; the watcher refreshes the load from etcd while only some are recorded there.
    p, _ = pool(3, Clock())
    picks = {f"j{i}": p.choose(f"j{i}").internal_ip for i in range(30)}
    recorded = [(job, ip) for job, ip in picks.items() if int(job[1:]) % 3 == 0]
    p.set_load(recorded)
    assert p.load == {"10.0.0.0": 10, "10.0.0.1": 10, "10.0.0.2": 10}
    p.set_load(list(picks.items()))  # all recorded now: the choices are not counted twice
    assert p.load == {"10.0.0.0": 10, "10.0.0.1": 10, "10.0.0.2": 10}
    assert Counter(p.choose(f"k{i}").internal_ip for i in range(3)) == {"10.0.0.0": 1, "10.0.0.1": 1, "10.0.0.2": 1}


def test_a_released_choice_no_longer_counts() -> None:
    p, _ = pool(2, Clock())
    assert p.choose("a", weight=2).internal_ip == "10.0.0.0"
    p.release("a")
    p.set_load([])
    assert p.load == {"10.0.0.0": 0, "10.0.0.1": 0}
    assert p.choose("b").internal_ip == "10.0.0.0"


async def test_a_gateway_whose_ssh_fails_is_skipped_until_it_answers_again() -> None:
    clock = Clock()
    p, nodes = pool(2, clock)
    nodes[0].down = True
    first = p.gateways[0]
    with pytest.raises(GatewayUnavailable):
        await p.run(first, ["true"])
    assert [p.choose(f"j{i}").internal_ip for i in range(3)] == ["10.0.0.1"] * 3
    nodes[0].down = False
    with pytest.raises(GatewayUnavailable):
        await p.run(first, ["true"])  # still marked down: refused without reaching the node
    assert len(nodes[0].calls) == 1
    clock.now += 31
    assert p.choose("k").internal_ip == "10.0.0.0"  # tried again after the retry period
    await p.run(first, ["true"])
    assert first.down_until == 0.0


def test_no_healthy_gateway_is_a_cluster_error() -> None:
    clock = Clock()
    p, _ = pool(1, clock)
    p.gateways[0].down_until = clock.now + 10
    with pytest.raises(ClusterUnavailable):
        p.choose("j")


async def test_concurrent_installs_on_one_gateway_go_out_in_few_restore_calls() -> None:
    p, nodes = pool(1, Clock())
    p.gateways[0].chains_ready = True
    gw = p.gateways[0]
    await asyncio.gather(*(p.install(gw, [ForwardRule(f"j-{i}", 50000 + i, "10.1.0.1", 50000 + i)]) for i in range(50)))
    restores = [c for c in nodes[0].calls if c[:3] == ["sudo", "-n", "iptables-restore"]]
    assert len(restores) <= 2
    assert p.restore_calls == len(restores)


async def test_with_a_site_helper_every_privileged_call_goes_through_it() -> None:
    helper = "/usr/local/sbin/bwvisu-forward"
    node = ScriptedRunner("gw")
    p = GatewayPool([Gateway(node, "10.0.0.0", "192.0.2.0")], down_retry_after=30, access=ForwardHelper(helper))
    gw = p.gateways[0]
    rule = ForwardRule("j-1", 50001, "10.1.0.1", 5901)
    await p.install(gw, [rule])
    await p.current(gw)
    await p.edit(gw, delete_dnat=[rule], delete_masquerade=[rule])
    assert node.calls == [
        ["sudo", "-n", helper, "ensure-chains"],  # one idempotent call instead of check/create pairs
        ["sudo", "-n", helper, "restore"],
        ["sudo", "-n", helper, "list", "BWVISU"],
        ["sudo", "-n", helper, "list", "BWVISU-POST"],
        ["sudo", "-n", helper, "restore"],
    ]
    assert all(argv[2] == helper for argv in node.calls)


async def test_a_refused_helper_call_fails_the_set_up_with_its_reason() -> None:
    node = ScriptedRunner("gw").on("sudo", answer(status=78, stderr="bwvisu-forward: configuration: cannot read\n"))
    p = GatewayPool([Gateway(node, "10.0.0.0", "192.0.2.0")], down_retry_after=30, access=gateway_access("/x"))
    with pytest.raises(GatewayCommandFailed) as caught:
        await p.ensure_chains(p.gateways[0])
    assert "exit 78: bwvisu-forward: configuration: cannot read" in (caught.value.internal or "")
    assert not p.gateways[0].chains_ready
    assert not p.is_down(p.gateways[0])  # the gateway answered


def test_without_a_helper_access_is_bwvisus_sudo_iptables() -> None:
    access = gateway_access(None)
    assert isinstance(access, SudoIptables)
    assert access.list_argv("BWVISU") == ["sudo", "-n", "iptables", "-t", "nat", "-S", "BWVISU"]
    assert access.restore_argv() == ["sudo", "-n", "iptables-restore", "--noflush"]
    assert access.setup_steps()[:2] == [
        (
            ["sudo", "-n", "iptables", "-t", "nat", "-S", "BWVISU"],
            ["sudo", "-n", "iptables", "-t", "nat", "-N", "BWVISU"],
        ),
        (
            ["sudo", "-n", "iptables", "-t", "nat", "-C", "PREROUTING", "-j", "BWVISU"],
            ["sudo", "-n", "iptables", "-t", "nat", "-I", "PREROUTING", "1", "-j", "BWVISU"],
        ),
    ]
    assert len(access.setup_steps()) == 4


def ahostsv4(call: Call) -> Answer:
    """``getent ahostsv4 NAME...``: 10.1.0.N for the N-th name asked."""
    out = "".join(f"10.1.0.{i} STREAM {name}\n" for i, name in enumerate(call.argv[2:], start=1))
    return answer(out, 0 if call.argv[2:] != ["nowhere"] else 2)


async def test_resolutions_are_reused_for_a_while_so_a_request_costs_one_ssh_call_less() -> None:
    clock = Clock()
    node = ScriptedRunner("gw0").on("getent", ahostsv4)
    p = GatewayPool([Gateway(node, "10.0.0.0", "192.0.2.0")], down_retry_after=30, clock=clock)
    gw = p.gateways[0]
    assert await p.resolve(gw, ["c1", "c2"]) == {"c1": "10.1.0.1", "c2": "10.1.0.2"}
    assert await p.resolve(gw, ["c2"]) == {"c2": "10.1.0.2"}
    assert len(node.calls) == 1
    assert await p.resolve(gw, ["c3", "c1"]) == {"c3": "10.1.0.1", "c1": "10.1.0.1"}
    assert node.calls[-1] == ["getent", "ahostsv4", "c3"]  # only what is not known yet
    clock.now += 61
    await p.resolve(gw, ["c1"])
    assert node.calls[-1] == ["getent", "ahostsv4", "c1"]  # asked again once the answer is old


def probing_pool(status: int) -> tuple[GatewayPool, ScriptedRunner]:
    """A gateway answering every command with exit ``status`` and one netcat success line."""
    line = "Connection to 10.1.0.1 50001 port [tcp/*] succeeded!\n"
    node = ScriptedRunner("gw0").on(lambda argv: True, answer(status=status, stderr=line))
    return GatewayPool([Gateway(node, "10.0.0.0", "192.0.2.0")], down_retry_after=30, clock=Clock()), node


async def test_a_bounded_probe_is_one_timeout_command_with_an_ssh_timeout_just_beyond_it() -> None:
    p, node = probing_pool(0)
    targets = [("10.1.0.1", 50001), ("10.1.0.2", 50001)]
    assert await p.probe(p.gateways[0], targets, deadline=3) == {("10.1.0.1", 50001)}
    assert node.calls == [commands.request_probe_argv(targets, deadline=3)]
    assert [c.timeout for c in node.log] == [3 + PROBE_SSH_SLACK]


async def test_a_probe_without_deadline_is_the_sequential_sweep_as_before() -> None:
    p, node = probing_pool(1)  # the last nc's status: nothing accepted on that host
    targets = [("10.1.0.1", 50001), ("10.1.0.2", 50001)]
    assert await p.probe(p.gateways[0], targets) == {("10.1.0.1", 50001)}
    assert node.calls == [commands.probe_argv(targets)]
    assert [c.timeout for c in node.log] == [None]


@pytest.mark.parametrize("status", [124, 137])
async def test_a_probe_over_its_deadline_raises_and_leaves_the_gateway_healthy(status: int) -> None:
    p, _ = probing_pool(status)
    gw = p.gateways[0]
    with pytest.raises(ProbeTimedOut) as caught:
        await p.probe(gw, [("10.1.0.1", 50001)], deadline=5)
    assert isinstance(caught.value, ClusterUnavailable)
    assert caught.value.code == "probe-timed-out"
    assert caught.value.public == "the gateway could not check the ports in time"
    assert not p.is_down(gw)
    assert p.healthy() == [gw]


@pytest.mark.parametrize("status", [2, 125, 127, -1])
async def test_a_bounded_probe_that_failed_otherwise_is_a_command_failure(status: int) -> None:
    # its script ends in ``wait`` (status 0): any other status means timeout or sh itself failed
    p, _ = probing_pool(status)
    with pytest.raises(GatewayCommandFailed):
        await p.probe(p.gateways[0], [("10.1.0.1", 50001)], deadline=5)
    assert not p.is_down(p.gateways[0])
