"""``sudo -n [-u USER] COMMAND`` on a simulated node: the option subset the runner uses, and who may run what.

Two policies. :class:`AnyCommand` is bwVisu's requirement as the simulator always had it: the runner's account
may run anything as anyone. :class:`Sudoers` reads a sudoers file (the subset ``USER HOST=(RUNAS) NOPASSWD: CMD,
...``; anything else in it is an error, so a change to a shipped file the simulator cannot mirror fails loudly),
which is how the site mode mirrors ``bwvisu_site``'s files. A command is named by its path, as sudo resolves it
through ``secure_path``; a rule's command without arguments allows any, with arguments exactly those. What sudo
says when a rule does not allow the command (``-n``: "a password is required", exit 1) is sudo 1.9's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from simulator.commands import CommandResult
from simulator.users import UserDB

# Where Debian installs the programs the runner runs, as sudo's secure_path finds them.
PROGRAM_PATHS = {
    "sbatch": "/usr/bin/sbatch", "squeue": "/usr/bin/squeue", "scancel": "/usr/bin/scancel", "sacct": "/usr/bin/sacct",
    "scontrol": "/usr/bin/scontrol", "iptables": "/usr/sbin/iptables", "iptables-restore": "/usr/sbin/iptables-restore",
    "iptables-save": "/usr/sbin/iptables-save", "nc": "/usr/bin/nc", "getent": "/usr/bin/getent", "sh": "/usr/bin/sh",
    "timeout": "/usr/bin/timeout", "id": "/usr/bin/id", "true": "/usr/bin/true", "cat": "/usr/bin/cat",
}  # fmt: skip
_PASSWORD_REQUIRED = "sudo: a password is required\n"  # noqa: S105 - sudo's message, not a password
_RULE = re.compile(
    r"(?P<user>\S+)\s+(?P<hosts>\S+)\s*=\s*\((?P<runas>[^)]*)\)\s*(?P<nopasswd>NOPASSWD:)?\s*(?P<cmds>.+)"
)


class SudoError(Exception):
    """sudo refused: :attr:`result` is what it answers."""

    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.stderr)
        self.result = result


class SudoPolicy(Protocol):
    def allows(self, login: str, target: str, program: str, args: list[str]) -> bool:
        """Whether ``login`` may run ``program`` (a path) with ``args`` as ``target`` without a password."""
        ...

    def has_rules(self, login: str) -> bool:
        """Whether any rule names ``login`` (sudo then refuses a command as oneself without asking a password)."""
        ...


@dataclass(frozen=True)
class AnyCommand:
    """bwVisu's requirement as the simulator models it: these accounts may run anything as anyone."""

    users: frozenset[str]

    def allows(self, login: str, target: str, program: str, args: list[str]) -> bool:
        return login in self.users

    def has_rules(self, login: str) -> bool:
        return login in self.users


@dataclass(frozen=True)
class Rule:
    """One sudoers rule: ``user`` may run ``program`` (with ``args`` exactly, or any when ``None``) as ``runas``."""

    user: str
    runas: frozenset[str]
    program: str
    args: tuple[str, ...] | None
    nopasswd: bool

    def matches(self, login: str, target: str, program: str, args: list[str]) -> bool:
        return (
            self.nopasswd
            and login == self.user
            and ("ALL" in self.runas or target in self.runas)
            and program == self.program
            and (self.args is None or tuple(args) == self.args)
        )


@dataclass(frozen=True)
class Sudoers:
    """The rules of sudoers files."""

    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, text: str, *, user: str | None = None, paths: Mapping[str, str] | None = None) -> Sudoers:
        """Rules of ``text``; ``user`` replaces every rule's user and ``paths`` its programs (as a site installs it)."""
        rules: list[Rule] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith(("#", "Defaults")):
                continue
            found = _RULE.fullmatch(line)
            if found is None or found["hosts"] != "ALL":
                raise ValueError(f"sudoers line {number}: not a rule the simulator can mirror: {line!r}")
            runas = frozenset(r.split(":")[0].strip() for r in found["runas"].split(",")) or frozenset({"root"})
            for command in found["cmds"].split(","):
                words = command.split()
                program = (paths or {}).get(words[0], words[0])
                args = None if len(words) == 1 else tuple(w for w in words[1:] if w != '""')
                rules.append(Rule(user or found["user"], runas, program, args, found["nopasswd"] is not None))
        return cls(tuple(rules))

    def __add__(self, other: Sudoers) -> Sudoers:
        return Sudoers(self.rules + other.rules)

    def allows(self, login: str, target: str, program: str, args: list[str]) -> bool:
        return any(rule.matches(login, target, program, args) for rule in self.rules)

    def has_rules(self, login: str) -> bool:
        return any(rule.user == login for rule in self.rules)


def program_path(name: str, installed: Mapping[str, str]) -> str:
    """The path sudo runs for ``name``: itself when absolute, else where ``secure_path`` finds it."""
    if name.startswith("/"):
        return name
    return installed.get(name) or PROGRAM_PATHS.get(name, f"/usr/bin/{name}")


def unwrap_sudo(  # noqa: PLR0917 - the dispatcher's one call, in sudo's own order
    argv: list[str],
    login_user: str,
    users: UserDB,
    policy: SudoPolicy,
    installed: Mapping[str, str] | None = None,
    host: str = "localhost",
) -> tuple[list[str], str]:
    """Strip ``sudo [-n] [-u USER] [--]``; return the inner argv and the effective user, or raise :class:`SudoError`.

    ``installed`` maps a program's name to its path for programs beyond :data:`PROGRAM_PATHS` (a site's helpers).
    Refused as oneself, a user with sudo rules is asked no password and told so plainly, naming ``host``.
    """
    if not argv or argv[0] != "sudo":
        return argv, login_user
    target = "root"
    rest = argv[1:]
    non_interactive = False
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "--":
            break
        if flag == "-n":
            non_interactive = True
        elif flag == "-u" and rest:
            target = rest.pop(0)
        elif flag.startswith("-u"):
            target = flag[2:]
        elif flag.startswith("--user="):
            target = flag.partition("=")[2]
        else:
            raise SudoError(CommandResult(1, "", f"sudo: invalid option -- '{flag.lstrip('-')[:1]}'\n"))
    account = users.get(target) if not target.startswith("#") else users.by_uid(int(target[1:]))
    if account is None:
        raise SudoError(
            CommandResult(1, "", f"sudo: unknown user {target}\nsudo: error initializing audit plugin sudoers_audit\n")
        )
    if not rest:
        raise SudoError(CommandResult(1, "", "usage: sudo -h | -K | -k | -V\n"))
    program = program_path(rest[0], installed or {})
    if login_user != "root" and not policy.allows(login_user, account.name, program, rest[1:]):
        if account.name == login_user and policy.has_rules(login_user):
            command = " ".join([program, *rest[1:]])
            text = f"Sorry, user {login_user} is not allowed to execute '{command}' as {login_user} on {host}.\n"
            raise SudoError(CommandResult(1, "", text))
        text = (
            _PASSWORD_REQUIRED
            if non_interactive
            else (
                "sudo: a terminal is required to read the password; either use the -S option to read from "
                "standard input or configure an askpass helper\n" + _PASSWORD_REQUIRED
            )
        )
        raise SudoError(CommandResult(1, "", text))
    return rest, account.name
