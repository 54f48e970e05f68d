"""The site's set-up, attacked from the runner's own account, the same on the simulator and for real.

The account may sudo only ``bwvisu-slurm-as`` and ``bwvisu-forward``: every other sudo is refused by sudo itself,
and every request outside the helpers' limits by the helper, with the same text and exit status on both clusters
and nothing changed on the gateway (its tables as root sees them are the same before and after).
The runner's own classes (:class:`~runner.slurm.cluster.SlurmCluster`, :class:`~runner.gateway.pool.GatewayPool`)
go through the helpers and turn their refusals into :mod:`runner.errors`; the attacks are raw commands, since an
attacker holding the account is not limited to what the runner would send.
"""

from __future__ import annotations

import shlex
import uuid

import pytest

from runner.errors import GatewayCommandFailed, SchedulerError
from runner.gateway import commands
from runner.gateway.iptables import ForwardRule
from runner.slurm import cli as slurm
from runner.ssh import CommandOutput
from tests.contract.backends import Backend
from tests.contract.support import cancel, gateway_pool, scheduler, squeue, submit, wait_state

pytestmark = [pytest.mark.contract, pytest.mark.timeout(120)]

PASSWORD_REQUIRED = (1, "", "sudo: a password is required\n")
NOT_ROOT = "/etc/bwvisu must belong to uid 2100 and be writable by no one else\n"  # the helper run without sudo
SLEEP = "#!/bin/bash\nsleep 300\n"


def answer(out: CommandOutput) -> tuple[int, str, str]:
    return out.exit_status, out.stdout, out.stderr


@pytest.mark.parametrize(
    "command",
    [
        "sudo -n -u alice sbatch --parsable",  # bwVisu's plain rule is gone
        "sudo -n -u root sbatch --parsable --wrap=id",
        "sudo -n -u daemon sbatch --parsable --wrap=id",
        "sudo -n sbatch --parsable --wrap=id",
        "sudo -n -u alice squeue",
        "sudo -n -u alice /usr/local/sbin/bwvisu-slurm-as alice sbatch",  # the helper only as root
        "sudo -n cat /etc/shadow",
    ],
)
async def test_command_node_sudo_allows_nothing_but_the_helper(backend: Backend, command: str) -> None:
    assert answer(await backend.command.run(shlex.split(command), stdin=SLEEP)) == PASSWORD_REQUIRED


@pytest.mark.parametrize(
    "command",
    [
        "sudo -n iptables -t nat -F",
        "sudo -n iptables -t filter -P INPUT DROP",
        "sudo -n iptables -t nat -S",
        "sudo -n iptables --modprobe=/bin/sh -t nat -S",
        "sudo -n iptables-restore --noflush",
        "sudo -n iptables-save -f /tmp/pwned",
        "sudo -n /usr/sbin/iptables-save",
        "sudo -n -u alice /usr/local/sbin/bwvisu-forward list BWVISU",
    ],
)
async def test_gateway_sudo_allows_nothing_but_the_helper(backend: Backend, command: str) -> None:
    before = await backend.gateway_tables()
    assert answer(await backend.gateway.run(shlex.split(command), stdin="*nat\n-F\nCOMMIT\n")) == PASSWORD_REQUIRED
    assert await backend.gateway_tables() == before


@pytest.mark.parametrize(
    ("user", "command", "status", "reason"),
    [
        ("root", "sbatch", 77, "root has uid 0, below min-uid 1000: not an ordinary user"),
        ("daemon", "sbatch", 77, "daemon has uid 1, below min-uid 1000: not an ordinary user"),
        ("nobody", "scancel", 77, "nobody has uid 65534, above max-uid 59999: not an ordinary user"),
        ("slurm", "scancel", 77, "slurm has uid 64030, above max-uid 59999: not an ordinary user"),
        ("bwvisu", "sbatch", 77, "bwvisu is the runner's own account"),
        ("nosuchuser", "sbatch", 67, "unknown user nosuchuser"),
        ("alice", "bash", 77, "command 'bash' is not allowed (only sbatch, scancel)"),
        ("alice", "squeue", 77, "command 'squeue' is not allowed (only sbatch, scancel)"),
        ("alice", "/usr/bin/sbatch", 77, "command '/usr/bin/sbatch' is not allowed (only sbatch, scancel)"),
        ("-u", "root", 64, "'-u' is not a user name"),
    ],
)
async def test_slurm_as_acts_only_for_ordinary_users(
    backend: Backend, user: str, command: str, status: int, reason: str
) -> None:
    assert backend.slurm_helper is not None
    argv = ["sudo", "-n", backend.slurm_helper, user, command, "--parsable", "--wrap=id"]
    out = await backend.command.run(argv, stdin=SLEEP)
    assert answer(out) == (status, "", f"bwvisu-slurm-as: refused: {reason}\n")


async def test_slurm_as_runs_the_job_as_the_user_and_refuses_without_sudo(backend: Backend) -> None:
    job_id = await submit(backend, SLEEP, "--hold", tag="site")
    try:
        assert (await squeue(backend, [job_id]))[job_id]["user"] == backend.user
    finally:
        assert await cancel(backend, job_id) is True
    await wait_state(backend, job_id, {"CANCELLED"})
    assert backend.slurm_helper is not None
    direct = await backend.command.run(slurm.sbatch_argv("alice", "x", "/tmp", backend.slurm_helper)[2:], stdin=SLEEP)
    assert answer(direct) == (78, "", f"bwvisu-slurm-as: configuration: {NOT_ROOT}")


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ("root", "root has uid 0, below min-uid 1000: not an ordinary user"),
        ("slurm", "slurm has uid 64030, above max-uid 59999: not an ordinary user"),
        ("bwvisu", "bwvisu is the runner's own account"),
    ],
)
async def test_the_runners_submit_and_cancel_for_a_refused_user_are_scheduler_errors(
    backend: Backend, user: str, reason: str
) -> None:
    cluster = scheduler(backend)
    with pytest.raises(SchedulerError) as caught:
        await cluster.submit(user, "site", "/tmp", SLEEP)
    assert caught.value.public == f"sbatch failed: bwvisu-slurm-as: refused: {reason}"
    assert caught.value.internal == f"exit 77 on {backend.command.name}"
    with pytest.raises(SchedulerError) as cancelled:
        await cluster.cancel(user, "1")
    assert cancelled.value.public == f"scancel failed: bwvisu-slurm-as: refused: {reason}"


def nat(*lines: str) -> str:
    return "\n".join(["*nat", *lines, "COMMIT"]) + "\n"


DNAT = '-p tcp -m tcp --dport 52100 -m comment --comment "bwvisu:contract" -j DNAT --to-destination {target}:5901'
MASQ = '-d {target}/32 -p tcp -m tcp --dport 5901 -m comment --comment "bwvisu:contract" -j MASQUERADE'


ONLY_AD = "is not allowed: only -A and -D of the runner's rules"
USAGE = "usage: bwvisu-forward ensure-chains | list CHAIN | restore | ensure-accounting | counters CHAIN"
NOT_OURS = "is not the runner's (BWVISU, BWVISU-POST)"
OUTSIDE = "8.8.8.8 is outside the compute networks"


UNTAGGED = DNAT.replace(' -m comment --comment "bwvisu:contract"', "")
RESTORE_REFUSALS = [
    ("*filter\n-F\nCOMMIT\n", "line 2: command '-F' is not allowed: only -A and -D of the runner's rules"),
    ("*mangle\n-F\nCOMMIT\n", "line 1: table 'mangle' is not allowed: the input must start with *nat (or *filter)"),
    (nat("-F"), f"line 2: command '-F' {ONLY_AD}"),
    (nat("-X BWVISU"), f"line 2: command '-X' {ONLY_AD}"),
    (nat("-P PREROUTING DROP"), f"line 2: command '-P' {ONLY_AD}"),
    (nat(":BWVISU - [0:0]"), "line 2: chain declarations are not allowed (with --noflush they flush the chain)"),
    (nat(f"-A PREROUTING {DNAT}"), f"line 2: chain 'PREROUTING' {NOT_OURS}"),
    (nat(f"-A BWVISU --modprobe=/tmp/x {DNAT}"), "line 2: option '--modprobe' is not allowed"),
    (nat(f"-A BWVISU -m owner --uid-owner 0 {DNAT}"), "line 2: match 'owner' is not allowed (only tcp and comment)"),
    (
        nat(f"-A BWVISU {DNAT.replace('-j DNAT', '-j LOG')}"),
        "line 2: target 'LOG' is not allowed in BWVISU (only DNAT)",
    ),
    (nat(f"-A BWVISU {UNTAGGED}"), 'line 2: the rule carries no job tag (-m comment --comment "bwvisu:<job id>")'),
    (nat(f"-A BWVISU {DNAT.replace('52100', '40000')}"), "line 2: port 40000 is outside 50000-60000"),
    (nat(f"-A BWVISU {DNAT.format(target='8.8.8.8')}"), f"line 2: {OUTSIDE}"),
    (nat(f"-A BWVISU-POST {MASQ.format(target='8.8.8.8')}"), f"line 2: {OUTSIDE}"),
    ("*nat\n", "line 1: COMMIT missing at the end of the *nat block"),
    (nat() + nat("-F"), "line 3: nothing may follow COMMIT but one *filter block of counting rules"),
    ("*nat\n-A BWVISU \u00e9\nCOMMIT\n", "input is not ASCII (byte 0xc3 at offset 15)"),
    (nat("x" * 600), "line 2: longer than 512 characters"),
]
ARGUMENT_REFUSALS = [
    (["list", "PREROUTING"], 65, f"chain 'PREROUTING' {NOT_OURS}"),
    (["list", "INPUT"], 65, f"chain 'INPUT' {NOT_OURS}"),
    (["save", "-f", "/tmp/pwned"], 64, f"{USAGE} (got 'save -f /tmp/pwned')"),
    (["ensure-chains", "--modprobe=/tmp/x"], 64, f"{USAGE} (got 'ensure-chains --modprobe=/tmp/x')"),
]


@pytest.mark.parametrize(
    ("argv", "text", "status", "reason"),
    [(["restore"], text, 65, reason) for text, reason in RESTORE_REFUSALS]
    + [(argv, "", status, reason) for argv, status, reason in ARGUMENT_REFUSALS],
)
async def test_forward_edits_only_the_runners_chains_within_the_limits(
    backend: Backend, argv: list[str], text: str, status: int, reason: str
) -> None:
    assert backend.gateway_helper is not None
    address = (await backend.gateway.run(commands.resolve_argv(backend.compute_hosts[:1]))).stdout.split()[0]
    before = await backend.gateway_tables()
    out = await backend.gateway.run(["sudo", "-n", backend.gateway_helper, *argv], stdin=text.format(target=address))
    refusal = f"bwvisu-forward: refused: {reason}"
    assert (out.exit_status, out.stdout) == (status, "")
    if reason.endswith("compute networks"):  # the networks themselves differ between the clusters
        assert out.stderr.startswith(refusal + " (")
    else:
        assert out.stderr == refusal + "\n"
    assert await backend.gateway_tables() == before


async def test_forward_accepts_the_runners_own_edits_and_refuses_without_sudo(backend: Backend) -> None:
    assert backend.gateway_helper is not None
    pool = gateway_pool(backend)
    gateway = pool.gateways[0]
    [address] = (await pool.resolve(gateway, backend.compute_hosts[:1])).values()
    rule = ForwardRule(f"contract-{uuid.uuid4().hex[:8]}", 52101, address, 5901)
    await pool.ensure_chains(gateway)
    before = await backend.gateway_tables()
    await pool.install(gateway, [rule])
    added = await backend.gateway_tables()
    assert f"--comment {rule.comment}" in added or f'--comment "{rule.comment}"' in added
    assert [r for r in (await pool.current(gateway)).dnat if r.job_id == rule.job_id] == [rule]
    await pool.edit(gateway, delete_dnat=[rule], delete_masquerade=[rule])
    assert await backend.gateway_tables() == before
    direct = await backend.gateway.run([backend.gateway_helper, "list", "BWVISU"])
    assert answer(direct) == (78, "", f"bwvisu-forward: configuration: {NOT_ROOT}")


@pytest.mark.parametrize(
    ("port", "outside", "reason"),
    [(40000, False, "port 40000 is outside 50000-60000"), (52102, True, OUTSIDE)],
)
async def test_a_forward_the_helper_refuses_fails_in_the_pool_and_changes_nothing(
    backend: Backend, port: int, outside: bool, reason: str
) -> None:
    pool = gateway_pool(backend)
    gateway = pool.gateways[0]
    [address] = (await pool.resolve(gateway, backend.compute_hosts[:1])).values()
    rule = ForwardRule(f"contract-{uuid.uuid4().hex[:8]}", port, "8.8.8.8" if outside else address, 5901)
    await pool.ensure_chains(gateway)
    before = await backend.gateway_tables()
    with pytest.raises(GatewayCommandFailed) as caught:
        await pool.install(gateway, [rule])
    assert (caught.value.status, caught.value.code) == (503, "gateway-command-failed")
    assert f"exit 65: bwvisu-forward: refused: line 2: {reason}" in (caught.value.internal or "")
    assert "bwvisu-forward" not in caught.value.public
    assert not pool.is_down(gateway)  # it answered
    assert await backend.gateway_tables() == before
