"""A gateway as the runner uses it (its nat chains, getent, nc, timeout and sh), the same on the simulator and for
real, in both set-ups: through ``bwvisu-forward`` (a site following ``bwvisu_site``) and with bwVisu's plain
``sudo iptables``.

Rules are built by :mod:`runner.gateway.iptables` / :mod:`runner.gateway.commands`, privileged calls by
:mod:`runner.gateway.access`, and answers read back with their parsers. Each test uses its own job id in the
rule comments (and its own chain), so a shared gateway's other rules are never touched.
"""

from __future__ import annotations

import ipaddress
import shlex
import uuid

import pytest

from runner.errors import ProbeTimedOut
from runner.gateway import commands
from runner.gateway.access import gateway_access
from runner.gateway.iptables import (
    DNAT_CHAIN,
    SNAT_CHAIN,
    ForwardRule,
    dnat_rule_args,
    list_command,
    parse_forward_rules,
    parse_masquerade_rules,
)
from runner.gateway.pool import SUDO_IPTABLES, Gateway, GatewayPool
from runner.ssh import CommandOutput
from tests.contract.backends import Backend
from tests.contract.support import scancel, submit, wait_state
from tests.polling import eventually

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]


def ok(out: CommandOutput) -> str:
    assert out.ok, f"{out.argv[:5]} exit {out.exit_status}: {out.stderr}"
    return out.stdout


async def resolve(backend: Backend, names: list[str]) -> dict[str, str]:
    out = await backend.gateway.run(commands.resolve_argv(names))
    return commands.parse_ahostsv4(ok(out), names)


async def test_getent_ahostsv4_resolves_compute_hosts(backend: Backend) -> None:
    out = await backend.gateway.run(commands.resolve_argv(backend.compute_hosts))
    assert out.exit_status == 0
    found = commands.parse_ahostsv4(out.stdout, backend.compute_hosts)
    assert set(found) == set(backend.compute_hosts)
    assert len(set(found.values())) == len(found)
    for address in found.values():
        ipaddress.IPv4Address(address)
    first = out.stdout.splitlines()[0].split()
    assert first[1:] == ["STREAM", backend.compute_hosts[0]]
    unknown = await backend.gateway.run(commands.resolve_argv(["no-such-host"]))
    assert (unknown.exit_status, unknown.stdout) == (2, "")


async def test_iptables_chain_append_list_delete_with_bwvisus_rules(compat_backend: Backend) -> None:
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


async def ensure_chains(backend: Backend) -> None:
    """The runner's chain set-up (runner.gateway.pool.GatewayPool.ensure_chains), call for call, twice."""
    for _ in range(2):  # idempotent
        for check, create in gateway_access(backend.gateway_helper).setup_steps():
            if check is None:
                ok(await backend.gateway.run(create))
                continue
            if not (await backend.gateway.run(check)).ok:
                await backend.gateway.run(create)
            ok(await backend.gateway.run(check))
    tables = (await backend.gateway_tables()).splitlines()
    for chain, hook in commands.CHAINS:
        assert tables.count(f"-A {hook} -j {chain}") == 1
        assert tables.count(f":{chain} -") == 1


async def check_restore_adds_and_deletes_forwards(backend: Backend) -> None:
    await ensure_chains(backend)
    access = gateway_access(backend.gateway_helper)
    job = f"contract-{uuid.uuid4().hex[:8]}"
    first, second = (await resolve(backend, backend.compute_hosts[:2])).values()
    rules = [ForwardRule(job, 52011, first, 5901), ForwardRule(job, 52012, second, 5902)]
    run = backend.gateway.run
    restore = access.restore_argv()

    async def mine() -> tuple[list[ForwardRule], list[tuple[str, str, int]]]:
        dnat = ok(await run(access.list_argv(DNAT_CHAIN)))
        masq = ok(await run(access.list_argv(SNAT_CHAIN)))
        return (
            sorted(r for r in parse_forward_rules(dnat) if r.job_id == job),
            sorted(m for m in parse_masquerade_rules(masq) if m[0] == job),
        )

    ok(await run(restore, commands.edit_input(add=rules)))
    try:
        assert await mine() == (sorted(rules), sorted([(job, first, 5901), (job, second, 5902)]))
        # All or nothing: deleting one present and one absent rule changes nothing; iptables-restore says why.
        absent = ForwardRule(job, 52013, first, 5903)
        failed = await run(restore, commands.edit_input(delete_dnat=[rules[0], absent]))
        assert (failed.exit_status, failed.stdout) == (1, "")
        assert "line 3 failed" in failed.stderr
        assert (await mine())[0] == sorted(rules)
        ok(await run(restore, commands.edit_input(delete_dnat=[rules[0]], delete_masquerade=[rules[0]])))
        assert await mine() == ([rules[1]], [(job, second, 5902)])
    finally:
        current = await mine()
        left = current[0]
        masq_left = [ForwardRule(j, 1, ip, port) for j, ip, port in current[1]]
        ok(await run(restore, commands.edit_input(delete_dnat=left, delete_masquerade=masq_left)))
    assert await mine() == ([], [])


async def test_restore_adds_and_deletes_forwards_through_the_helper(backend: Backend) -> None:
    await check_restore_adds_and_deletes_forwards(backend)


async def test_restore_adds_and_deletes_forwards_with_bwvisus_rules(compat_backend: Backend) -> None:
    await check_restore_adds_and_deletes_forwards(compat_backend)


async def test_nc_probe_from_a_gateway_sees_a_jobs_port(backend: Backend) -> None:
    port = 47020
    job_id = await submit(backend, backend.listener_script(port), tag="listener")
    try:
        node = (await wait_state(backend, job_id, {"RUNNING"}))["node-list"]
        addresses = await resolve(backend, backend.compute_hosts)
        address = addresses[node]
        other = next(a for h, a in addresses.items() if h != node)

        async def probe() -> set[tuple[str, int]]:
            out = await backend.gateway.run(commands.probe_argv([(address, port), (address, port + 1), (other, port)]))
            return commands.parse_probe(out.stderr)

        open_ports = await eventually(probe, lambda found: (address, port) in found, 30, f"port {port} on {node}")
        assert open_ports == {(address, port)}
        single = await backend.gateway.run(["nc", "-z", "-w1", address, str(port)])
        assert (single.exit_status, single.stdout) == (0, "")
        closed = await backend.gateway.run(["nc", "-z", "-w1", address, str(port + 1)])
        assert closed.exit_status == 1
        verbose = await backend.gateway.run(commands.probe_argv([(address, port)]))
        assert verbose.exit_status == 0
        assert commands.parse_probe(verbose.stderr) == {(address, port)}
    finally:
        await scancel(backend, job_id)


async def test_request_probe_answers_open_closed_and_timed_out_alike(backend: Backend) -> None:
    """The runner's bounded probe (``timeout N sh -c 'nc ... & ... & wait'``), exactly as it sends it."""
    port = 47030
    job_id = await submit(backend, backend.listener_script(port), tag="listener")
    try:
        node = (await wait_state(backend, job_id, {"RUNNING"}))["node-list"]
        addresses = await resolve(backend, backend.compute_hosts)
        address = addresses[node]
        other = next(a for h, a in addresses.items() if h != node)
        run = backend.gateway.run

        async def probe(
            targets: list[tuple[str, int]], deadline: float = commands.REQUEST_PROBE_DEADLINE
        ) -> CommandOutput:
            return await run(commands.request_probe_argv(targets, deadline=deadline))

        # open: reported; closed (on the job's host and another): refused at once; the status is wait's, 0
        out = await eventually(
            lambda: probe([(address, port), (address, port + 1), (other, port)]),
            lambda out: (address, port) in commands.parse_probe(out.stderr),
            30,
            f"port {port} on {node}",
        )
        assert (out.exit_status, out.stdout) == (0, "")
        assert commands.parse_probe(out.stderr) == {(address, port)}
        # parallel ncs share stderr: netcat writes a failure in pieces ("nc: ", the message, the reason) and a
        # success whole, without the "nc: " prefix, so a prefix may land before another process's line
        assert f"connect to {address} port {port + 1} (tcp) failed" in out.stderr
        assert f"connect to {other} port {port} (tcp) failed" in out.stderr
        assert out.stderr.count(": Connection refused") == 2
        closed = await probe([(address, port + 1), (other, port)])
        assert (closed.exit_status, commands.parse_probe(closed.stderr)) == (0, set())

        # timed out: a host that never answers outlasts the deadline; the gateway ends the probe and exits 124,
        # with what was written by then (the open port) and nothing about the silent host
        silent = backend.silent_address()
        timed = await probe([(address, port), (silent, port)], deadline=0.5)
        assert timed.exit_status == 124
        assert timed.exit_status in commands.TIMED_OUT_STATUSES
        assert commands.parse_probe(timed.stderr) == {(address, port)}
        assert silent not in timed.stderr
        pool = GatewayPool([Gateway(backend.gateway, backend.gateway.host, backend.gateway.host)], down_retry_after=60)
        with pytest.raises(ProbeTimedOut):
            await pool.probe(pool.gateways[0], [(silent, port)], deadline=0.5)
        assert not pool.is_down(pool.gateways[0])

        # Why the runner lets timeout send TERM: with -s KILL, timeout kills itself with its process group and
        # the login shell had exec'd it, so sshd reports an exit signal (asyncssh: status -1), not status 137.
        script = shlex.join(["nc", "-z", "-v", "-w1", silent, str(port)]) + " & wait"
        killed = await run(["timeout", "-s", "KILL", "0.5", "sh", "-c", script])
        assert killed.exit_status == -1
    finally:
        await scancel(backend, job_id)
