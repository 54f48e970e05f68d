"""A gateway as the runner uses it, through its own :class:`runner.gateway.pool.GatewayPool` (name resolution,
chain set-up, forwards added and removed, probes, and how failures map to :mod:`runner.errors`), the same on the
simulator and for real, in both set-ups: through ``bwvisu-forward`` (a site following ``bwvisu_site``) and with
bwVisu's plain ``sudo iptables``.

What the pool did is checked from where an administrator stands (``iptables-save`` as root). Raw commands remain
only where the command line itself is the subject (iptables' chain texts, ``timeout -s KILL``). Each test uses its
own job id in the rule comments (and its own chain), so a shared gateway's other rules are never touched.
"""

from __future__ import annotations

import ipaddress
import shlex
import uuid

import pytest

from runner.config import SshSettings
from runner.errors import GatewayCommandFailed, GatewayUnavailable, ProbeTimedOut
from runner.gateway import commands
from runner.gateway.iptables import (
    ForwardRule,
    dnat_rule_args,
    list_command,
    parse_forward_rules,
    parse_masquerade_rules,
)
from runner.gateway.pool import SUDO_IPTABLES, Gateway, GatewayPool
from runner.ssh import CommandOutput, SshNode
from simulator.etcd import free_port
from tests.contract.backends import Backend
from tests.contract.support import DOWN_RETRY_AFTER, cancel, gateway_pool, submit, wait_state
from tests.polling import eventually

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]


def ok(out: CommandOutput) -> str:
    assert out.ok, f"{out.argv[:5]} exit {out.exit_status}: {out.stderr}"
    return out.stdout


async def test_resolve_finds_compute_hosts_and_leaves_unknown_names_out(backend: Backend) -> None:
    pool = gateway_pool(backend)
    found = await pool.resolve(pool.gateways[0], [*backend.compute_hosts, "no-such-host"])
    assert set(found) == set(backend.compute_hosts)
    assert len(set(found.values())) == len(found)
    for address in found.values():
        ipaddress.IPv4Address(address)
    assert await pool.resolve(pool.gateways[0], ["no-such-host"]) == {}


async def test_iptables_chain_append_list_delete_with_bwvisus_rules(compat_backend: Backend) -> None:
    """iptables' own answers to the check/create pairs of the runner's chain set-up (``SudoIptables``)."""
    backend = compat_backend
    chain = f"CT-{uuid.uuid4().hex[:8].upper()}"
    rule = ForwardRule(f"contract-{uuid.uuid4().hex[:8]}", 52001, "10.9.8.7", 5901)
    run = backend.gateway.run
    assert (await run(commands.chain_check_argv(chain, SUDO_IPTABLES))).exit_status == 1
    ok(await run(commands.chain_create_argv(chain, SUDO_IPTABLES)))
    try:
        again = await run(commands.chain_create_argv(chain, SUDO_IPTABLES))
        assert (again.exit_status, again.stderr) == (1, "iptables: Chain already exists.\n")
        assert ok(await run(list_command(chain, iptables=SUDO_IPTABLES))) == f"-N {chain}\n"
        append = [*SUDO_IPTABLES, "-t", "nat", "-A", chain, *dnat_rule_args(rule)]
        ok(await run(append))
        listed = ok(await run(list_command(chain, iptables=SUDO_IPTABLES)))
        assert parse_forward_rules(listed, chain=chain) == [rule]
        assert listed.splitlines()[1] == (
            f'-A {chain} -p tcp -m tcp --dport 52001 -m comment --comment "bwvisu:{rule.job_id}" '
            "-j DNAT --to-destination 10.9.8.7:5901"
        )
        delete = [*SUDO_IPTABLES, "-t", "nat", "-D", chain, *dnat_rule_args(rule)]
        ok(await run(delete))
        assert ok(await run(list_command(chain, iptables=SUDO_IPTABLES))) == f"-N {chain}\n"
        missing = await run(delete)
        assert missing.exit_status == 1
        assert "does a matching rule exist in that chain?" in missing.stderr
    finally:
        await run([*SUDO_IPTABLES, "-t", "nat", "-F", chain])
        ok(await run([*SUDO_IPTABLES, "-t", "nat", "-X", chain]))
    assert (await run(commands.chain_check_argv(chain, SUDO_IPTABLES))).exit_status == 1


async def check_pool_adds_and_deletes_forwards(backend: Backend) -> None:
    """A forward added and removed through the runner's :class:`GatewayPool`, as root's ``iptables-save`` sees it."""
    pool = gateway_pool(backend)
    gateway = pool.gateways[0]
    await pool.ensure_chains(gateway)
    again = gateway_pool(backend)  # a second runner process: the set-up is idempotent
    await again.ensure_chains(again.gateways[0])
    tables = (await backend.gateway_tables()).splitlines()
    for chain, hook in commands.CHAINS:
        assert tables.count(f"-A {hook} -j {chain}") == 1
        assert tables.count(f":{chain} -") == 1
    before = await backend.gateway_tables()
    job = f"contract-{uuid.uuid4().hex[:8]}"
    first, second = (await pool.resolve(gateway, backend.compute_hosts[:2])).values()
    rules = [ForwardRule(job, 52011, first, 5901), ForwardRule(job, 52012, second, 5902)]

    async def mine() -> tuple[list[ForwardRule], list[ForwardRule]]:
        current = await pool.current(gateway)
        return (
            sorted(r for r in current.dnat if r.job_id == job),
            sorted(m for m in current.masquerade if m.job_id == job),
        )

    def masquerade(*kept: ForwardRule) -> list[ForwardRule]:
        return [ForwardRule(r.job_id, 1, r.internal_ip, r.internal_port) for r in kept]  # no port of its own

    await pool.install(gateway, rules)
    try:
        assert await mine() == (sorted(rules), sorted(masquerade(*rules)))
        saved = await backend.gateway_tables()  # root's view, not the runner's listing
        assert sorted(r for r in parse_forward_rules(saved) if r.job_id == job) == sorted(rules)
        masquerades = sorted(m for m in parse_masquerade_rules(saved) if m[0] == job)
        assert masquerades == sorted([(job, first, 5901), (job, second, 5902)])
        # All or nothing: deleting one present and one absent rule changes nothing, and the gateway stays up.
        absent = ForwardRule(job, 52013, first, 5903)
        with pytest.raises(GatewayCommandFailed) as caught:
            await pool.edit(gateway, delete_dnat=[rules[0], absent])
        assert (caught.value.status, caught.value.code) == (503, "gateway-command-failed")
        assert "exit 1" in (caught.value.internal or "")
        assert caught.value.public == "a gateway could not set up the forward"
        assert not pool.is_down(gateway)
        assert await backend.gateway_tables() == saved
        await pool.edit(gateway, delete_dnat=[rules[0]], delete_masquerade=[rules[0]])
        assert await mine() == ([rules[1]], masquerade(rules[1]))
    finally:
        left, masq_left = await mine()
        await pool.edit(gateway, delete_dnat=left, delete_masquerade=masq_left)
    assert await mine() == ([], [])
    assert await backend.gateway_tables() == before


async def test_pool_adds_and_deletes_forwards_through_the_helper(backend: Backend) -> None:
    await check_pool_adds_and_deletes_forwards(backend)


async def test_pool_adds_and_deletes_forwards_with_bwvisus_rules(compat_backend: Backend) -> None:
    await check_pool_adds_and_deletes_forwards(compat_backend)


async def test_an_unreachable_gateway_is_marked_down_and_unavailable(backend: Backend) -> None:
    dead = SshNode("127.0.0.1", free_port(), "nobody", SshSettings(connect_timeout=5, command_timeout=10))
    live = gateway_pool(backend).gateways[0]
    # nothing listens there: refused at once (the addresses are labels in the pool's books)
    pool = GatewayPool([Gateway(dead, "192.0.2.1", "192.0.2.1"), live], down_retry_after=DOWN_RETRY_AFTER)
    with pytest.raises(GatewayUnavailable) as caught:
        await pool.resolve(pool.gateways[0], backend.compute_hosts[:1])
    assert (caught.value.status, caught.value.code) == (503, "gateway-unavailable")
    assert "cannot connect" in (caught.value.internal or "")
    assert pool.health() == {"192.0.2.1": False, live.internal_ip: True}
    assert pool.choose("contract-job") is live
    assert set(await pool.resolve(live, backend.compute_hosts[:1])) == set(backend.compute_hosts[:1])
    await dead.close()


async def listening_job(backend: Backend, port: int) -> tuple[str, str, str, str]:
    """A running job listening on ``port``: its id, its node, that node's address and another node's."""
    job_id = await submit(backend, backend.listener_script(port), tag="listener")
    node = (await wait_state(backend, job_id, {"RUNNING"}))["node-list"]
    pool = gateway_pool(backend)
    addresses = await pool.resolve(pool.gateways[0], backend.compute_hosts)
    other = next(a for h, a in addresses.items() if h != node)
    return job_id, node, addresses[node], other


async def test_the_readiness_sweep_probe_sees_a_jobs_port(backend: Backend) -> None:
    port = 47020
    job_id, node, address, other = await listening_job(backend, port)
    try:
        pool = gateway_pool(backend)
        gateway = pool.gateways[0]
        targets = [(address, port), (address, port + 1), (other, port)]
        open_ports = await eventually(
            lambda: pool.probe(gateway, targets), lambda found: (address, port) in found, 30, f"port {port} on {node}"
        )
        assert open_ports == {(address, port)}
        assert await pool.probe(gateway, [(address, port)]) == {(address, port)}
        assert await pool.probe(gateway, [(address, port + 1)]) == set()
    finally:
        await cancel(backend, job_id)


async def test_request_probe_answers_open_closed_and_timed_out_alike(backend: Backend) -> None:
    """The runner's bounded probe (``timeout N sh -c 'nc ... & ... & wait'``) through the pool."""
    port = 47030
    job_id, node, address, other = await listening_job(backend, port)
    try:
        pool = gateway_pool(backend)
        gateway = pool.gateways[0]
        targets = [(address, port), (address, port + 1), (other, port)]
        # open: reported; closed (on the job's host and another): refused at once
        found = await eventually(
            lambda: pool.probe(gateway, targets, deadline=commands.REQUEST_PROBE_DEADLINE),
            lambda found: (address, port) in found,
            30,
            f"port {port} on {node}",
        )
        assert found == {(address, port)}
        assert await pool.probe(gateway, [(address, port + 1), (other, port)], deadline=5) == set()

        # parallel ncs share stderr: netcat writes a failure in pieces ("nc: ", the message, the reason) and a
        # success whole, without the "nc: " prefix, so a prefix may land before another process's line
        out = await eventually(
            lambda: backend.gateway.run(commands.request_probe_argv(targets)),
            lambda out: (address, port) in commands.parse_probe(out.stderr),
            30,
            f"port {port} on {node}, probed by hand",
        )
        assert (out.exit_status, out.stdout) == (0, "")  # the status is wait's
        assert commands.parse_probe(out.stderr) == {(address, port)}
        assert f"connect to {address} port {port + 1} (tcp) failed" in out.stderr
        assert f"connect to {other} port {port} (tcp) failed" in out.stderr
        assert out.stderr.count(": Connection refused") == 2

        # timed out: a host that never answers outlasts the deadline; the gateway ends the probe (exit 124), the
        # pool says so and keeps the gateway, which answered
        silent = backend.silent_address()
        with pytest.raises(ProbeTimedOut) as caught:
            await pool.probe(gateway, [(address, port), (silent, port)], deadline=0.5)
        assert (caught.value.status, caught.value.code) == (503, "probe-timed-out")
        assert not pool.is_down(gateway)
        timed = await backend.gateway.run(commands.request_probe_argv([(address, port), (silent, port)], deadline=0.5))
        assert timed.exit_status in commands.TIMED_OUT_STATUSES
        assert commands.parse_probe(timed.stderr) == {(address, port)}  # what was written by then
        assert silent not in timed.stderr

        # Why the runner lets timeout send TERM: with -s KILL, timeout kills itself with its process group and
        # the login shell had exec'd it, so sshd reports an exit signal (asyncssh: status -1), not status 137.
        script = shlex.join(["nc", "-z", "-v", "-w1", silent, str(port)]) + " & wait"
        killed = await backend.gateway.run(["timeout", "-s", "KILL", "0.5", "sh", "-c", script])
        assert killed.exit_status == -1
    finally:
        await cancel(backend, job_id)
