#!/usr/bin/python3 -I
"""bwvisu-slurm-as: the only thing the runner's account may run as root on a command node (installed as
``/usr/local/sbin/bwvisu-slurm-as``, allowed by ``sudoers``, limited by ``/etc/bwvisu/slurm-as.conf``).

``bwvisu-slurm-as USER COMMAND ARGS...`` runs one Slurm client command as an ordinary user, in place of
``sudo -u USER COMMAND ARGS...``, which sudoers cannot limit to a range of uids:

* ``USER`` must be a name (letters, digits, ``_ . -``; not starting with ``-``) that the system's user database
  (``getpwnam``: files, LDAP, SSSD alike) knows, with a uid of at least ``min-uid`` and at most ``max-uid`` (if
  set: packages' system accounts may have high uids, e.g. Debian's ``slurm`` 64030), not the overflow uid 65534,
  and neither one of ``runner-accounts`` nor the account that called sudo;
* ``COMMAND`` must be one of ``commands`` (some of sbatch, scancel, squeue, sacct; by default the two the runner
  runs as a user, sbatch and scancel), a bare name run from ``slurm-bin``; ``ARGS`` go to it unchanged, and so
  does stdin (``sbatch`` reads the batch script there).

It then becomes the user for good (supplementary groups from the user database, then gid, then uid; real, effective
and saved ids alike), checks that root cannot be regained, and ``exec``s the command in the user's home with an
environment of its own (``HOME USER LOGNAME SHELL MAIL PATH``, plus the caller's locale, ``TZ`` and ``TERM`` when
plain, as ``sudo -u`` keeps them). Refusals write one line to stderr
(``bwvisu-slurm-as: refused: ...``) and exit 64 (malformed command line), 67 (no such user), 77 (not an allowed
user or command) or 78 (missing or unsafe configuration), before anything runs. Needs Python 3.9 or newer,
standard library only.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROG = "bwvisu-slurm-as"
CONFIG_PATH = Path("/etc/bwvisu/slurm-as.conf")
EXIT_USAGE, EXIT_NO_USER, EXIT_REFUSED, EXIT_CONFIG = 64, 67, 77, 78
OVERFLOW_UID = 65534
SLURM_COMMANDS = ("sbatch", "scancel", "squeue", "sacct")
DEFAULT_COMMANDS = ("sbatch", "scancel")
"""What the runner runs as a user; it runs ``squeue`` and ``sacct`` as its own account."""
PATH = "/usr/local/bin:/usr/bin:/bin"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_KEPT = re.compile(r"LANG|LANGUAGE|LC_[A-Z]+|TZ|TERM")
_PLAIN = re.compile(r"[A-Za-z0-9_.:@/+-]{1,100}")


class Refusal(Exception):
    """A request the helper will not carry out; ``str(self)`` is the reason, :attr:`status` the exit status."""

    status = EXIT_REFUSED

    def text(self) -> str:
        return f"{PROG}: refused: {self}\n"


class UsageRefusal(Refusal):
    status = EXIT_USAGE


class NoSuchUser(Refusal):
    status = EXIT_NO_USER


class ConfigRefusal(Refusal):
    status = EXIT_CONFIG

    def text(self) -> str:
        return f"{PROG}: configuration: {self}\n"


@dataclass(frozen=True)
class Policy:
    """Who the runner may act for and with which commands."""

    min_uid: int
    runner_accounts: frozenset[str]
    commands: tuple[str, ...] = DEFAULT_COMMANDS
    slurm_bin: str = "/usr/bin"
    max_uid: int | None = None


@dataclass(frozen=True)
class Account:
    """The passwd entry of the user to become."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class Run:
    """What to ``exec`` once the user's ids are taken: the program's path and its argv (``argv[0]`` bare)."""

    account: Account
    program: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return self.argv[0]


def render_config(policy: Policy) -> str:
    """The configuration file that :func:`parse_config` reads back as ``policy``."""
    max_uid = "" if policy.max_uid is None else f"max-uid = {policy.max_uid}\n"
    return (
        "[slurm-as]\n"
        f"min-uid = {policy.min_uid}\n"
        f"{max_uid}"
        f"runner-accounts = {' '.join(sorted(policy.runner_accounts))}\n"
        f"commands = {' '.join(policy.commands)}\n"
        f"slurm-bin = {policy.slurm_bin}\n"
    )


def parse_config(text: str) -> Policy:
    """The ``[slurm-as]`` section; every problem is a :class:`ConfigRefusal` naming the key."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ConfigRefusal(f"cannot parse: {exc}") from None
    if parser.sections() != ["slurm-as"]:
        raise ConfigRefusal("needs exactly one section, [slurm-as]")
    section = dict(parser["slurm-as"])
    unknown = set(section) - {"min-uid", "max-uid", "runner-accounts", "commands", "slurm-bin"}
    if unknown:
        raise ConfigRefusal(f"unknown keys: {', '.join(sorted(unknown))}")
    if "min-uid" not in section or "runner-accounts" not in section:
        raise ConfigRefusal("min-uid and runner-accounts are required")
    min_uid, max_uid = _uid(section, "min-uid"), _uid(section, "max-uid") if "max-uid" in section else None
    if max_uid is not None and max_uid < min_uid:
        raise ConfigRefusal(f"max-uid {max_uid} is below min-uid {min_uid}")
    accounts = section["runner-accounts"].replace(",", " ").split()
    if not accounts or not all(_NAME.fullmatch(a) for a in accounts):
        raise ConfigRefusal("runner-accounts must name the runner's accounts")
    commands = tuple(section.get("commands", " ".join(DEFAULT_COMMANDS)).replace(",", " ").split())
    if not commands or not set(commands) <= set(SLURM_COMMANDS):
        raise ConfigRefusal(f"commands must be some of {' '.join(SLURM_COMMANDS)}")
    slurm_bin = section.get("slurm-bin", "/usr/bin")
    if not slurm_bin.startswith("/"):
        raise ConfigRefusal(f"slurm-bin {slurm_bin!r} must be an absolute path")
    return Policy(min_uid, frozenset(accounts), commands, slurm_bin.rstrip("/") or "/", max_uid)


def _uid(section: dict[str, str], key: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,9}", section[key]):
        raise ConfigRefusal(f"{key} must be a positive number, got {section[key]!r}")
    return int(section[key])


def check_owner(item: Path, owner: int, mode: int, euid: int) -> None:
    """Refuse a configuration file or folder that ``euid`` does not own or that others may write."""
    if owner != euid or mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigRefusal(f"{item} must belong to uid {euid} and be writable by no one else")


def load_config(path: Path = CONFIG_PATH) -> Policy:
    """Read ``path``, which (like its folder) must belong to this process's user (root) and be writable by no other."""
    try:
        for item in (path.parent, path):
            info = item.stat()
            check_owner(item, info.st_uid, info.st_mode, os.geteuid())
        return parse_config(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigRefusal(f"cannot read {path}: {exc}") from None


Lookup = Callable[[str], "Account | None"]
"""A user name to its passwd entry, ``None`` for no such user."""


def system_lookup(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)


def check_request(argv: Sequence[str], policy: Policy, lookup: Lookup, caller: str | None) -> Run:
    """What to run for ``USER COMMAND ARGS...``, or a :class:`Refusal`; ``caller`` is who ran sudo (``SUDO_USER``)."""
    if len(argv) < 2:
        raise UsageRefusal(f"usage: {PROG} USER COMMAND [ARGS...] (COMMAND one of {', '.join(policy.commands)})")
    name, command = argv[0], argv[1]
    if not _NAME.fullmatch(name):
        raise UsageRefusal(f"{name[:64]!r} is not a user name")
    if command not in policy.commands:
        raise Refusal(f"command {command[:64]!r} is not allowed (only {', '.join(policy.commands)})")
    account = lookup(name)
    if account is None:
        raise NoSuchUser(f"unknown user {name}")
    if account.name != name:
        raise Refusal(f"the user database answered {account.name!r} for {name!r}")
    if account.uid < policy.min_uid:
        raise Refusal(f"{name} has uid {account.uid}, below min-uid {policy.min_uid}: not an ordinary user")
    if policy.max_uid is not None and account.uid > policy.max_uid:
        raise Refusal(f"{name} has uid {account.uid}, above max-uid {policy.max_uid}: not an ordinary user")
    if account.uid == OVERFLOW_UID:
        raise Refusal(f"{name} has the overflow uid {OVERFLOW_UID}: not an ordinary user")
    if name in policy.runner_accounts or name == caller:
        raise Refusal(f"{name} is the runner's own account")
    return Run(account, f"{policy.slurm_bin}/{command}", (command, *argv[2:]))


def environment(account: Account, inherited: Mapping[str, str]) -> dict[str, str]:
    """The command's whole environment: the user's own variables, and of the caller's only locale and terminal.

    ``sudo -u USER`` passes these on too (its ``env_keep``); a batch job inherits them (``sbatch --export=ALL``).
    Only plain values are kept: nothing else of the caller's reaches the user's job.
    """
    env = {name: value for name, value in inherited.items() if _KEPT.fullmatch(name) and _PLAIN.fullmatch(value)}
    env.update(
        HOME=account.home,
        USER=account.name,
        LOGNAME=account.name,
        SHELL=account.shell,
        MAIL=f"/var/mail/{account.name}",
        PATH=PATH,
    )
    return env


def become(account: Account) -> None:
    """Take the user's groups and ids for good; refuses to go on if root could still be regained."""
    os.initgroups(account.name, account.gid)
    os.setresgid(account.gid, account.gid, account.gid)
    os.setresuid(account.uid, account.uid, account.uid)
    if os.getresuid() != (account.uid,) * 3 or os.getresgid() != (account.gid,) * 3:
        raise Refusal(f"could not become {account.name}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise Refusal(f"root could be regained after becoming {account.name}")


def _execute(run: Run) -> None:
    become(run.account)
    try:
        os.chdir(run.account.home)
    except OSError:
        os.chdir("/")
    os.execve(run.program, list(run.argv), environment(run.account, os.environ))  # noqa: S606 - no shell, fixed path


def main(argv: Sequence[str] | None = None, config: Path = CONFIG_PATH) -> int:
    """Check the request and ``exec`` the command (never returns then); else the refusal's status."""
    try:
        args = sys.argv[1:] if argv is None else argv
        policy = load_config(config)
        run = check_request(args, policy, system_lookup, os.environ.get("SUDO_USER"))
        _execute(run)
    except Refusal as exc:
        sys.stderr.write(exc.text())
        return exc.status
    except OSError as exc:
        sys.stderr.write(f"{PROG}: cannot run: {exc}\n")
        return 126
    return 0  # not reached: execve replaced this process


if __name__ == "__main__":
    sys.exit(main())
