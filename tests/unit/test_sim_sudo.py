"""The simulated sudo in the site mode obeys the shipped sudoers files, read from ``bwvisu_site`` itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import site
from simulator.config import ClusterConfig, Role, SiteConfig
from simulator.sudo import Rule, SudoError, Sudoers, unwrap_sudo
from simulator.users import UserDB

pytestmark = pytest.mark.unit

USERS = UserDB.build([("alice", 1001, 1001)], ("svc", 990), Path("/h"))
CFG = ClusterConfig.build(service_user="svc", site=SiteConfig(forward_path="/opt/bin/fwd"))
HELPER = "/usr/local/sbin/bwvisu-slurm-as"


def test_the_shipped_files_give_one_rule_each_for_the_service_user_at_the_install_paths() -> None:
    assert site.sudo_policy({Role.COMMAND}, CFG).rules == (Rule("svc", frozenset({"root"}), HELPER, None, True),)
    assert site.sudo_policy({Role.GATEWAY}, CFG).rules == (
        Rule("svc", frozenset({"root"}), "/opt/bin/fwd", None, True),
    )
    assert len(site.sudo_policy({Role.COMMAND, Role.GATEWAY}, CFG).rules) == 2
    assert site.sudo_policy({Role.COMPUTE}, CFG).rules == ()


@pytest.mark.parametrize(
    "argv",
    [
        ["sudo", "-n", "-u", "alice", "sbatch", "--parsable"],  # bwVisu's plain form: not in the site's file
        ["sudo", "-n", "-u", "root", "sbatch", "--wrap=id"],
        ["sudo", "-n", "sbatch"],
        ["sudo", "-n", "-u", "daemon", "squeue"],
        ["sudo", "-n", "iptables", "-t", "nat", "-F"],
        ["sudo", "-n", "/usr/sbin/iptables-save", "-f", "/tmp/x"],
        ["sudo", "-n", "cat", "/etc/shadow"],
        ["sudo", "-n", "-u", "alice", HELPER, "alice", "sbatch"],  # the helper only as root
        ["sudo", "-n", "/usr/local/bin/bwvisu-slurm-as", "alice", "sbatch"],  # another path
    ],
)
def test_everything_else_needs_a_password(argv: list[str]) -> None:
    policy = site.sudo_policy({Role.COMMAND}, CFG)
    with pytest.raises(SudoError) as caught:
        unwrap_sudo(argv, "svc", USERS, policy, site.installed(CFG.site))  # type: ignore[arg-type]
    assert (caught.value.result.exit_status, caught.value.result.stderr) == (1, "sudo: a password is required\n")


def test_refused_as_oneself_sudo_says_so_without_asking_for_a_password() -> None:
    policy = site.sudo_policy({Role.COMMAND}, CFG)
    with pytest.raises(SudoError) as caught:
        unwrap_sudo(["sudo", "-n", "-u", "svc", "sbatch", "--parsable"], "svc", USERS, policy, {}, "login1")
    assert caught.value.result.stderr == (
        "Sorry, user svc is not allowed to execute '/usr/bin/sbatch --parsable' as svc on login1.\n"
    )


def test_the_helper_runs_as_root_with_any_arguments_by_path_or_by_name() -> None:
    policy = site.sudo_policy({Role.COMMAND}, CFG)
    programs = site.installed(CFG.site)  # type: ignore[arg-type]
    argv = ["sudo", "-n", HELPER, "alice", "sbatch", "--parsable"]
    assert unwrap_sudo(argv, "svc", USERS, policy, programs) == ([HELPER, "alice", "sbatch", "--parsable"], "root")
    by_name = ["sudo", "-n", "-u", "root", "bwvisu-slurm-as", "root", "sbatch"]  # secure_path finds it
    assert unwrap_sudo(by_name, "svc", USERS, policy, programs) == (["bwvisu-slurm-as", "root", "sbatch"], "root")
    with pytest.raises(SudoError):
        unwrap_sudo(argv, "alice", USERS, policy, programs)  # the rule is the service user's


def test_sudoers_subset() -> None:
    rules = Sudoers.parse(
        'Defaults env_reset\n# c\nu ALL=(ALL:ALL) NOPASSWD: /bin/a, /bin/b x y\nv ALL=(alice,bob) /bin/c ""\n'
    ).rules
    assert rules == (
        Rule("u", frozenset({"ALL"}), "/bin/a", None, True),
        Rule("u", frozenset({"ALL"}), "/bin/b", ("x", "y"), True),
        Rule("v", frozenset({"alice", "bob"}), "/bin/c", (), False),
    )
    policy = Sudoers(rules)
    assert policy.allows("u", "anyone", "/bin/b", ["x", "y"])
    assert not policy.allows("u", "anyone", "/bin/b", ["x"])
    assert not policy.allows("v", "alice", "/bin/c", [])  # a password would be asked
    for bad in ("u host1=(ALL) NOPASSWD: /bin/a", "%group ALL", "Cmnd_Alias X = /bin/a x"):
        with pytest.raises(ValueError, match="not a rule the simulator can mirror"):
            Sudoers.parse(bad)
