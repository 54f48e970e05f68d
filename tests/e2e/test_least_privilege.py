"""The runner's account attacks the real cluster it is allowed on, and gets nothing beyond its work (SPEC, point 3).

From where the account stands (SSH as ``bwvisu``, set up as ``bwvisu_site`` says): no Slurm command as root or a
system account, no other table or chain flushed, read or changed, no program run as root through iptables'
``--modprobe``, no file written through ``iptables-save -f``. Each attack is checked by its effect, seen as root
(no job, no file, tables unchanged), not only by its exit status; where bwVisu's plain rules (``bwvisu-compat``)
let the same attack through, that is shown too, so the checks are known to see it.
"""

from __future__ import annotations

import shlex

import pytest

from containers.nodes import wait_until
from containers.testbed import COMPAT_USER, FORWARD, SLURM_AS, Testbed
from runner.gateway import commands
from runner.gateway.iptables import ForwardRule
from tests.e2e.e2e_support import ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PASSWORD_REQUIRED = "sudo: a password is required\n"


def tables(testbed: Testbed, gateway: str = "gateway1") -> str:
    """Every table of the gateway as root sees it, without counters and dates."""
    saved = ok(testbed.node(gateway).exec(["iptables-save"]))
    return "\n".join(line.split(" [")[0] for line in saved.splitlines() if not line.startswith("#"))


def jobs_of(testbed: Testbed, user: str) -> str:
    return ok(testbed.node("controller").exec(["squeue", "-h", "-t", "all", "-u", user, "-o", "%i %u"]))


def exists(testbed: Testbed, node: str, path: str) -> bool:
    return testbed.node(node).exec(["test", "-e", path]).ok


@pytest.mark.parametrize("user", ["root", "daemon", "slurm", "nobody", "bwvisu", COMPAT_USER])
def test_no_slurm_command_as_root_a_system_account_or_the_runner(testbed: Testbed, user: str) -> None:
    script = "#!/bin/bash\ntouch /tmp/ran-as-$(id -un)\n"
    for command in ("sbatch --parsable", "scancel 1", "squeue"):
        plain = testbed.ssh("command1", f"sudo -n -u {user} {command}", stdin=script)
        assert plain.exit_code == 1
        if user == "bwvisu":  # as itself, sudo asks no password before refusing
            shown = f"/usr/bin/{command}"
            assert plain.stderr == f"Sorry, user bwvisu is not allowed to execute '{shown}' as bwvisu on command1.\n"
        else:
            assert plain.stderr == PASSWORD_REQUIRED
    helper = testbed.ssh("command1", f"sudo -n {SLURM_AS} {user} sbatch --parsable", stdin=script)
    assert helper.exit_code == 77
    assert helper.stderr.startswith(f"bwvisu-slurm-as: refused: {user} ")
    assert jobs_of(testbed, user) == ""


def test_root_jobs_are_refused_by_slurm_itself_even_under_bwvisus_rules(testbed: Testbed) -> None:
    # bwVisu's "(ALL) sbatch" rule lets the account submit as root; DisableRootJobs=YES makes slurmctld refuse it.
    compat = testbed.ssh("command1", "sudo -n -u root sbatch --parsable --wrap=id", user=COMPAT_USER)
    assert compat.exit_code == 1
    assert "sbatch: error: Batch job submission failed: " in compat.stderr
    as_root = testbed.node("command1").exec(["sbatch", "--parsable", "--wrap=id"])
    assert as_root.exit_code == 1
    assert jobs_of(testbed, "root") == ""


def test_an_ordinary_users_job_still_runs_as_that_user(testbed: Testbed) -> None:
    job = ok(testbed.ssh("command1", f"sudo -n {SLURM_AS} bob sbatch --parsable --chdir=/home/bob --wrap='id -un'"))
    job_id = job.strip()
    assert jobs_of(testbed, "bob").split() == [job_id, "bob"]

    def log() -> list[str]:
        found = [testbed.node(n).exec(["cat", f"/home/bob/slurm-{job_id}.out"]) for n in ("compute1", "compute2")]
        return [f.stdout for f in found if f.ok and f.stdout]

    wait_until(f"job {job_id} wrote its log", lambda: bool(log()), 60)
    assert log() == ["bob\n"]


@pytest.mark.parametrize(
    "command",
    [
        "sudo -n iptables -t nat -F",
        "sudo -n iptables -t filter -F",
        "sudo -n iptables -P FORWARD DROP",
        "sudo -n iptables -t nat -D POSTROUTING 1",
        "sudo -n iptables -t nat -A PREROUTING -p tcp --dport 22 -j DNAT --to-destination 1.2.3.4",
        "sudo -n iptables -t filter -S",
        "sudo -n iptables-restore",
        f"sudo -n {FORWARD} restore",
    ],
)
def test_no_other_table_or_chain_is_flushed_read_or_changed(testbed: Testbed, command: str) -> None:
    before = tables(testbed)
    flush = "*nat\n-F\n-X\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-F\nCOMMIT\n"
    done = testbed.ssh("gateway1", command, stdin=flush)
    assert done.exit_code != 0
    assert done.stderr in (PASSWORD_REQUIRED, "bwvisu-forward: refused: line 2: command '-F' is not allowed: "
                           "only -A and -D of the runner's rules\n")  # fmt: skip
    assert tables(testbed) == before


def test_the_helper_reads_and_changes_only_the_runners_chains(testbed: Testbed) -> None:
    for chain in ("PREROUTING", "POSTROUTING", "INPUT", "OUTPUT", "FORWARD"):
        listed = testbed.ssh("gateway1", f"sudo -n {FORWARD} list {chain}")
        assert (listed.exit_code, listed.stdout) == (65, "")
    public, compute = testbed.endpoints.gateways[0].public_ip, testbed.endpoints.compute[0].cluster_ip
    assert public is not None
    before = tables(testbed)
    # the runner's own rule form, outside the limits: to the gateway's own sshd, from a port outside the range
    for rule, reason in ((ForwardRule("evil", 50022, public, 22), f"{public} is outside the compute networks"),
                         (ForwardRule("evil", 2222, compute, 22), "port 2222 is outside 50000-60000")):  # fmt: skip
        refused = testbed.ssh("gateway1", f"sudo -n {FORWARD} restore", stdin=commands.edit_input(add=[rule]))
        assert refused.exit_code == 65
        assert f"bwvisu-forward: refused: line 2: {reason}" in refused.stderr
    assert tables(testbed) == before


def test_no_program_runs_as_root_through_modprobe(testbed: Testbed) -> None:
    evil = "/home/bwvisu/evil"
    ok(testbed.ssh("gateway1", f"printf '#!/bin/sh\\ntouch /tmp/modprobe-ran\\n' > {evil} && chmod +x {evil}"))
    for command in (
        f"sudo -n iptables --modprobe={evil} -t nat -S",
        f"sudo -n iptables -M {evil} -t raw -S",
        f"sudo -n iptables-restore --modprobe={evil}",
    ):
        done = testbed.ssh("gateway1", command, stdin="*raw\nCOMMIT\n")
        assert (done.exit_code, done.stderr) == (1, PASSWORD_REQUIRED)
    line = f'-A BWVISU --modprobe={evil} -p tcp -m tcp --dport 50001 -m comment --comment "bwvisu:x" -j DNAT'
    done = testbed.ssh("gateway1", f"sudo -n {FORWARD} restore", stdin=f"*nat\n{line}\nCOMMIT\n")
    assert (done.exit_code, done.stderr) == (
        65,
        "bwvisu-forward: refused: line 2: option '--modprobe' is not allowed\n",
    )
    assert not exists(testbed, "gateway1", "/tmp/modprobe-ran")


def test_no_file_is_written_through_iptables_save(testbed: Testbed) -> None:
    for command in ("sudo -n iptables-save -f /etc/pwned", "sudo -n /usr/sbin/iptables-save -f /etc/pwned"):
        done = testbed.ssh("gateway1", command)
        assert (done.exit_code, done.stderr) == (1, PASSWORD_REQUIRED)
    helper = testbed.ssh("gateway1", shlex.join(["sudo", "-n", FORWARD, "save", "-f", "/etc/pwned"]))
    assert helper.exit_code == 64
    assert not exists(testbed, "gateway1", "/etc/pwned")
    # the same attack under bwVisu's rules: root writes the file wherever the account says
    compat = testbed.ssh("gateway1", "sudo -n iptables-save -f /etc/compat-pwned", user=COMPAT_USER)
    try:
        assert compat.ok, compat.stderr
        owner = ok(testbed.node("gateway1").exec(["stat", "-c", "%U", "/etc/compat-pwned"]))
        assert owner == "root\n"
    finally:
        testbed.node("gateway1").exec(["rm", "-f", "/etc/compat-pwned"])
