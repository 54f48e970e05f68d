"""``iptables-restore``: apply an iptables-save formatted batch, one table block at a time, atomically.

Each ``*table`` ... ``COMMIT`` block runs inside :meth:`Netfilter.transaction`: a failing line undoes the
whole block and reports the line as iptables-restore does. As in iptables, without ``--noflush`` a block
replaces its table; with ``--noflush`` a ``:CHAIN`` line still flushes an existing user chain.
"""

from __future__ import annotations

import shlex

from simulator.commands import CommandResult
from simulator.iptables_command import execute, parse_command
from simulator.iptables_rules import TRY_HELP, VERSION, IptablesError, MissingChain
from simulator.iptables_table import BUILTIN_CHAINS, Netfilter

RESTORE_VERSION = VERSION.replace("iptables", "iptables-restore")
_RESTORE_HELP = "Try `iptables-restore -h' or 'iptables-restore --help' for more information."


def _line_error(exc: IptablesError, line: int) -> IptablesError:
    """iptables-restore's wording: parameter problems name the line; failed operations say it failed."""
    if exc.exit_status == 2:
        detail = str(exc).removeprefix(f"{VERSION}: ").removesuffix(f"\n{TRY_HELP}")
        return IptablesError(f"{RESTORE_VERSION}: {detail}\nError occurred at line: {line}\n{_RESTORE_HELP}", 2)
    return IptablesError(f"iptables-restore: line {line} failed: {str(exc).removeprefix('iptables: ')}", 1)


def _declare_chain(nf: Netfilter, table: str, text: str) -> None:
    fields = text[1:].split()
    if not fields:
        raise IptablesError("iptables-restore: empty chain name", 2)
    name = fields[0]
    policy = fields[1] if len(fields) > 1 else "-"
    if name in BUILTIN_CHAINS[table]:
        if policy != "-":
            nf.set_policy(table, name, policy)
    elif name in nf.tables[table]:
        nf.flush(table, name)  # iptables-restore --noflush flushes a declared user chain
    else:
        nf.new_chain(table, name)


def _check_table(nf: Netfilter, table: str, line: int) -> None:
    if table not in nf.tables:
        detail = f"iptables-restore: line {line} table name '{table}' invalid"
        raise IptablesError(f"{RESTORE_VERSION}: {detail}\nError occurred at line: {line}\n{_RESTORE_HELP}", 2)


def _start_table(nf: Netfilter, table: str, noflush: bool) -> None:
    if not noflush:
        nf.flush(table)
        nf.delete_chain(table)


def _apply_block(nf: Netfilter, table: str, body: list[tuple[int, str]], noflush: bool, commit: int) -> None:
    with nf.transaction():
        _start_table(nf, table, noflush)
        for number, text in body:
            try:
                if text.startswith(":"):
                    _declare_chain(nf, table, text)
                    continue
                cmd = parse_command(["-t", table, *shlex.split(text)])
                execute(nf, cmd)
            except MissingChain as exc:  # nf_tables resolves jumps when the batch is committed
                raise _line_error(exc, commit) from None
            except IptablesError as exc:
                raise _line_error(exc, number) from None
            except ValueError:
                raise _line_error(IptablesError("bad quoting", 2), number) from None


def restore(nf: Netfilter, text: str, noflush: bool) -> CommandResult:
    """Apply ``text``; raise :class:`IptablesError` with iptables-restore's message on failure."""
    table: str | None = None
    body: list[tuple[int, str]] = []
    number = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if table is None:
            if not line.startswith("*"):
                raise IptablesError(f"iptables-restore: line {number} failed", 1)
            table, body = line[1:].strip(), []
            _check_table(nf, table, number)
        elif line == "COMMIT":
            _apply_block(nf, table, body, noflush, number)
            table = None
        elif line.startswith("*"):
            raise IptablesError(f"iptables-restore: line {number} failed", 1)
        else:
            body.append((number, line))
    if table is not None:
        raise IptablesError(f"iptables-restore: COMMIT expected at line {number + 1}", 1)
    return CommandResult(0)
