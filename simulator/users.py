"""Cluster accounts (the passwd database every simulated node shares) and the ``id``/``getent`` commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulator.commands import CommandContext, CommandResult


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/bash"
    gecos: str = ""

    def passwd_line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.gecos}:{self.home}:{self.shell}"


# Accounts every Debian system has, as its /etc/passwd lists them: jobs must never run as these.
SYSTEM_ACCOUNTS = (
    Account("daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin", "daemon"),
    Account("slurm", 64030, 64030, "/nonexistent", "/usr/sbin/nologin"),  # Debian's static uid for Slurm's user
    Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin", "nobody"),
)


class UserDB:
    """root, system accounts, the runner's service account and the configured users.

    The service account and the configured users have their homes in ``$PREFIX/$USER``; root and the system
    accounts keep their usual homes outside it.
    """

    def __init__(self, accounts: list[Account]) -> None:
        self._by_name = {a.name: a for a in accounts}
        self._by_uid = {a.uid: a for a in accounts}

    @classmethod
    def build(cls, users: list[tuple[str, int, int]], service: tuple[str, int], home_prefix: Path) -> UserDB:
        accounts = [Account("root", 0, 0, "/root", gecos="root"), *SYSTEM_ACCOUNTS]
        accounts.append(Account(service[0], service[1], service[1], str(home_prefix / service[0])))
        accounts += [Account(name, uid, gid, str(home_prefix / name)) for name, uid, gid in users]
        return cls(accounts)

    def get(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_uid(self, uid: int) -> Account | None:
        return self._by_uid.get(uid)

    def all(self) -> list[Account]:
        return list(self._by_name.values())


def _db(ctx: CommandContext) -> UserDB:
    db: UserDB = ctx.services["users"]
    return db


async def id_command(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """coreutils ``id [-u|-g|-n] [USER]``."""
    flags = [f"-{c}" for a in argv[1:] if a.startswith("-") for c in a[1:]]  # -un == -u -n
    names = [a for a in argv[1:] if not a.startswith("-")]
    name = names[0] if names else ctx.user
    account = _db(ctx).get(name)
    if account is None:
        return CommandResult(1, "", f"id: '{name}': no such user\n")
    group = _db(ctx).by_uid(account.gid)
    group_name = group.name if group is not None else str(account.gid)
    if "-u" in flags:
        return CommandResult(0, f"{account.name if '-n' in flags else account.uid}\n")
    if "-g" in flags:
        return CommandResult(0, f"{group_name if '-n' in flags else account.gid}\n")
    line = f"uid={account.uid}({account.name}) gid={account.gid}({group_name}) groups={account.gid}({group_name})\n"
    return CommandResult(0, line)


async def getent_command(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """glibc ``getent passwd [NAME...]``: exit 2 when a key is not found."""
    if len(argv) < 2 or argv[1] != "passwd":
        database = argv[1] if len(argv) > 1 else ""
        usage = "Try `getent --help' or `getent --usage' for more information.\n"
        return CommandResult(1, "", f"Unknown database: {database}\n{usage}")
    db = _db(ctx)
    if len(argv) == 2:
        return CommandResult(0, "".join(a.passwd_line() + "\n" for a in db.all()))
    lines: list[str] = []
    status = 0
    for key in argv[2:]:
        account = db.by_uid(int(key)) if key.isdigit() else db.get(key)
        if account is None:
            status = 2
        else:
            lines.append(account.passwd_line() + "\n")
    return CommandResult(status, "".join(lines))


async def hostname_command(ctx: CommandContext, _argv: list[str], _stdin: bytes) -> CommandResult:
    return CommandResult(0, f"{ctx.node.name}\n")


async def true_command(_ctx: CommandContext, _argv: list[str], _stdin: bytes) -> CommandResult:
    return CommandResult(0)
