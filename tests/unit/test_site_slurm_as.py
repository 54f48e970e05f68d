"""The command-node helper (``bwvisu-slurm-as``): Slurm commands only, only as ordinary users, stdin kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwvisu_site.command import bwvisu_slurm_as as helper

pytestmark = pytest.mark.unit

POLICY = helper.Policy(1000, frozenset({"bwvisu", "bwvisu-compat", "slurm"}), helper.SLURM_COMMANDS)
USERS = {
    a.name: a
    for a in [
        helper.Account("root", 0, 0, "/root", "/bin/bash"),
        helper.Account("daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"),
        helper.Account("slurm", 64030, 64030, "/var/lib/slurm", "/bin/false"),
        helper.Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin"),
        helper.Account("alice", 2001, 2001, "/home/alice", "/bin/bash"),
        helper.Account("bwvisu", 2100, 2100, "/home/bwvisu", "/bin/bash"),
        helper.Account("bwvisu-compat", 2101, 2101, "/home/bwvisu-compat", "/bin/bash"),
        helper.Account("carol", 2003, 2003, "/home/carol", "/bin/bash"),
        helper.Account("low", 999, 999, "/home/low", "/bin/bash"),
    ]
}


def check(*argv: str, caller: str | None = "carol") -> helper.Run:
    return helper.check_request(list(argv), POLICY, USERS.get, caller)


def test_an_ordinary_user_gets_the_slurm_command_with_its_arguments() -> None:
    run = check("alice", "sbatch", "--parsable", "--chdir=/home/alice")
    assert run == helper.Run(USERS["alice"], "/usr/bin/sbatch", ("sbatch", "--parsable", "--chdir=/home/alice"))
    for command in ("scancel", "squeue", "sacct"):
        assert check("alice", command).program == f"/usr/bin/{command}"
    caller = {"LANG": "C.UTF-8", "LC_TIME": "de_DE.UTF-8", "TERM": "unknown", "TZ": "Europe/Berlin",
              "LC_ALL": "$(id)", "LD_PRELOAD": "/tmp/x.so", "PYTHONPATH": "/tmp", "SUDO_USER": "bwvisu",
              "HOME": "/home/bwvisu", "PATH": "/tmp", "BASH_ENV": "/tmp/x"}  # fmt: skip
    assert helper.environment(USERS["alice"], caller) == {
        "HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/bash", "MAIL": "/var/mail/alice",
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_TIME": "de_DE.UTF-8", "TERM": "unknown",
        "TZ": "Europe/Berlin",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "status", "reason"),
    [
        (["root", "sbatch", "--wrap=id"], 77, "root has uid 0, below min-uid 1000: not an ordinary user"),
        (["daemon", "squeue"], 77, "daemon has uid 1, below min-uid 1000"),
        (["low", "squeue"], 77, "low has uid 999, below min-uid 1000"),
        (["nobody", "sbatch"], 77, "nobody has the overflow uid 65534"),
        (["slurm", "scancel", "1"], 77, "runner's own account"),  # listed there, since POLICY has no max-uid
        (["bwvisu", "scancel", "1"], 77, "bwvisu is the runner's own account"),
        (["bwvisu-compat", "sbatch"], 77, "bwvisu-compat is the runner's own account"),
        (["carol", "sbatch"], 77, "carol is the runner's own account"),  # whoever called sudo
        (["nosuchuser", "sbatch"], 67, "unknown user nosuchuser"),
        (["alice", "bash"], 77, "command 'bash' is not allowed (only sbatch, scancel, squeue, sacct)"),
        (["alice", "/usr/bin/sbatch"], 77, "command '/usr/bin/sbatch' is not allowed"),
        (["alice", "scontrol", "update"], 77, "command 'scontrol' is not allowed"),
        (["alice", "srun", "id"], 77, "command 'srun' is not allowed"),
        (["-u", "root", "sbatch"], 64, "'-u' is not a user name"),
        (["#0", "sbatch"], 64, "'#0' is not a user name"),
        (["", "sbatch"], 64, "'' is not a user name"),
        (["alice"], 64, "usage: bwvisu-slurm-as USER COMMAND [ARGS...]"),
        ([], 64, "usage:"),
    ],
)
def test_refusals(argv: list[str], status: int, reason: str) -> None:
    with pytest.raises(helper.Refusal) as caught:
        check(*argv)
    assert caught.value.status == status
    assert reason in str(caught.value)
    assert caught.value.text() == f"bwvisu-slurm-as: refused: {caught.value}\n"


def test_max_uid_keeps_packages_high_system_accounts_out() -> None:
    bounded = helper.Policy(1000, frozenset({"bwvisu"}), max_uid=59999)
    for name, uid in (("slurm", 64030), ("nobody", 65534)):
        with pytest.raises(helper.Refusal, match=f"{name} has uid {uid}, above max-uid 59999: not an ordinary user"):
            helper.check_request([name, "scancel", "1"], bounded, USERS.get, None)
    assert helper.check_request(["alice", "scancel", "1"], bounded, USERS.get, None).account.name == "alice"


def test_a_user_database_answering_for_another_name_is_refused() -> None:
    with pytest.raises(helper.Refusal, match="answered 'alice' for 'Alice'"):
        helper.check_request(["Alice", "squeue"], POLICY, lambda _name: USERS["alice"], None)


def test_config() -> None:
    assert helper.parse_config(helper.render_config(POLICY)) == POLICY
    narrow = helper.parse_config("[slurm-as]\nmin-uid = 5000\nrunner-accounts = svc, svc2\n")
    assert narrow == helper.Policy(5000, frozenset({"svc", "svc2"}), ("sbatch", "scancel"))  # the runner's two
    shipped = Path(helper.__file__).with_name("slurm-as.conf").read_text()
    assert helper.parse_config(shipped) == helper.Policy(
        1000, frozenset({"bwvisu"}), ("sbatch", "scancel"), max_uid=59999
    )
    bounded = helper.Policy(1000, frozenset({"bwvisu"}), max_uid=59999)
    assert helper.parse_config(helper.render_config(bounded)) == bounded
    with pytest.raises(helper.Refusal, match="'squeue' is not allowed"):
        helper.check_request(["alice", "squeue"], narrow, USERS.get, None)
    base = "[slurm-as]\nmin-uid = 1000\nrunner-accounts = bwvisu\n"
    for text, reason in [
        ("", "exactly one section"),
        ("[slurm-as]\nmin-uid = 1000\n", "required"),
        (base.replace("1000", "0"), "positive number"),
        (base.replace("1000", "-5"), "positive number"),
        (base.replace("bwvisu", ""), "must name the runner's accounts"),
        (base + "commands = sbatch srun\n", "must be some of"),
        (base + "slurm-bin = bin\n", "absolute path"),
        (base + "max-uid = 9\n", "max-uid 9 is below min-uid 1000"),
        (base + "max-uid = x\n", "max-uid must be a positive number"),
        (base + "maxuid = 9\n", "unknown keys: maxuid"),
    ]:
        with pytest.raises(helper.ConfigRefusal, match=reason):
            helper.parse_config(text)


def test_main_refuses_without_a_safe_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "slurm-as.conf"
    config.write_text(helper.render_config(POLICY))
    config.chmod(0o646)
    assert helper.main(["alice", "squeue"], config=config) == 78
    assert "bwvisu-slurm-as: configuration: " in capsys.readouterr().err
    config.chmod(0o644)
    assert helper.main(["root", "squeue"], config=config) == 77
    assert capsys.readouterr().err.startswith("bwvisu-slurm-as: refused: root has uid 0")
