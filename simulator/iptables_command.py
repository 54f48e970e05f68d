"""Parsing an ``iptables`` command line into one :class:`Command` and executing it on a table.

Mirrors iptables' own argument handling: one command per call (``Cannot use -D with -A``), ``!`` before an
option inverts it, ``-w``/``--wait`` takes an optional number, rule options are checked by
:class:`~simulator.iptables_rules.RuleBuilder`. Pure: no table state is touched here.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.commands import CommandResult
from simulator.iptables_output import list_rules, list_table
from simulator.iptables_rules import (
    RULE_OPTIONS_WITH_VALUE,
    VERSION,
    IptablesError,
    Rule,
    RuleBuilder,
    busy,
    parameter_problem,
)
from simulator.iptables_table import Netfilter

_COMMANDS = {
    "-A": "A",
    "--append": "A",
    "-I": "I",
    "--insert": "I",
    "-D": "D",
    "--delete": "D",
    "-C": "C",
    "--check": "C",
    "-N": "N",
    "--new-chain": "N",
    "-X": "X",
    "--delete-chain": "X",
    "-F": "F",
    "--flush": "F",
    "-S": "S",
    "--list-rules": "S",
    "-L": "L",
    "--list": "L",
    "-P": "P",
    "--policy": "P",
}
_NEEDS_CHAIN = frozenset("AIDCNP")
_TAKES_RULE = frozenset("AIDC")
_FLAGS = {
    "-n": "numeric",
    "--numeric": "numeric",
    "--line-numbers": "line_numbers",
    "-v": "verbose",
    "--verbose": "verbose",
    "-x": "exact",
    "--exact": "exact",
}
MAX_CHAIN_NAME = 28


@dataclass(frozen=True)
class Command:
    """One parsed iptables invocation; ``op`` is the command letter (``A``, ``I``, ``D``, ...)."""

    op: str
    table: str = "filter"
    chain: str | None = None
    rule: Rule | None = None
    number: int | None = None
    policy: str | None = None
    numeric: bool = False
    line_numbers: bool = False
    verbose: bool = False


def _split_short(argv: list[str]) -> list[str]:
    """Split bundled short flags the way getopt does for the ones people bundle (``-nL``, ``-tnat``)."""
    out: list[str] = []
    for arg in argv:
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            if arg[1] == "t":
                out.extend(["-t", arg[2:]])
                continue
            if all(c in "nvxLSFXwZ" for c in arg[1:]):
                out.extend(f"-{c}" for c in arg[1:])
                continue
        out.append(arg)
    return out


def _split_long(argv: list[str]) -> list[str]:
    """``--table=nat`` as ``--table nat``, as getopt_long reads a long option's value."""
    out: list[str] = []
    for arg in argv:
        name, equals, value = arg.partition("=")
        out.extend([name, value] if arg.startswith("--") and equals else [arg])
    return out


def parse_command(argv: list[str]) -> Command:  # noqa: PLR0912, PLR0915
    """Parse ``argv`` (without the program name); raise ``IptablesError`` as iptables would."""
    args = _split_short(_split_long(argv))
    op: str | None = None
    op_flag = ""
    table = "filter"
    positional: list[str] = []
    flags: set[str] = set()
    builder = RuleBuilder()
    first_rule_option: str | None = None
    invert = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "!":
            invert = True
            continue
        if arg in _COMMANDS:
            if op is not None:
                raise parameter_problem(f"Cannot use {arg if len(arg) == 2 else '-' + _COMMANDS[arg]} with {op_flag}")
            op, op_flag = _COMMANDS[arg], f"-{_COMMANDS[arg]}"
            continue
        if arg in ("-t", "--table"):
            if i >= len(args):
                raise parameter_problem(f'option "{arg}" requires an argument')
            table = args[i]
            i += 1
        elif arg in ("-w", "--wait"):
            if i < len(args) and args[i].isdigit():
                i += 1
        elif arg in ("-W", "--wait-interval"):
            i += 1
        elif arg in _FLAGS:
            flags.add(_FLAGS[arg])
        elif arg in RULE_OPTIONS_WITH_VALUE:
            if i >= len(args):
                raise parameter_problem(f'option "{arg}" requires an argument')
            builder.take(arg, args[i], invert)
            first_rule_option = first_rule_option or arg
            i += 1
        elif arg.startswith("-") and arg != "-":
            raise parameter_problem(f'unknown option "{arg}"')
        else:
            positional.append(arg)
        invert = False
    if op is None:
        raise parameter_problem("no command specified")
    if table not in ("filter", "nat"):
        raise IptablesError(f"{VERSION}: table '{table}' does not exist\n{NO_TABLE_HINT}", 3)
    chain = positional.pop(0) if positional else None
    if op in _NEEDS_CHAIN and chain is None:
        raise parameter_problem(f'option "{op_flag}" requires an argument')
    number: int | None = None
    policy: str | None = None
    if op == "P":
        if not positional:
            raise parameter_problem(f'option "{op_flag}" requires an argument')
        policy = positional.pop(0)
    elif op in ("I", "D", "L", "S") and positional:
        text = positional.pop(0)
        if not text.isdigit() or int(text) < 1:
            raise parameter_problem(f"Invalid rule number `{text}'")
        number = int(text)
    if positional:
        raise parameter_problem(f"Bad argument `{positional[0]}'")
    if first_rule_option is not None and (op not in _TAKES_RULE or (op == "D" and number is not None)):
        raise parameter_problem(f"Illegal option `{first_rule_option}' with this command")
    if op == "N" and chain is not None:
        _check_new_chain_name(chain)
    rule: Rule | None = None
    if op in _TAKES_RULE and not (op == "D" and number is not None):
        rule = builder.build()
    return Command(
        op=op,
        table=table,
        chain=chain,
        rule=rule,
        number=number,
        policy=policy,
        numeric="numeric" in flags,
        line_numbers="line_numbers" in flags,
        verbose="verbose" in flags,
    )


def _check_new_chain_name(chain: str) -> None:
    if len(chain) > MAX_CHAIN_NAME:
        raise parameter_problem(f"chain name `{chain}' too long (must be under {MAX_CHAIN_NAME + 1} chars)")
    if chain[0] in "-!":
        raise parameter_problem(f"chain name not allowed to start with `{chain[0]}'")


NO_TABLE_HINT = "Perhaps iptables or your kernel needs to be upgraded."
NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE"})


def _refuse(nf: Netfilter, cmd: Command) -> None:
    """What iptables-nft refuses before the table is touched."""
    table, chain = cmd.table, cmd.chain
    if cmd.op in ("S", "L") and chain is not None and chain not in nf.tables[table]:
        # iptables-nft lists through the nft cache: a chain it does not find there is "incompatible"
        raise IptablesError(f"{VERSION}: chain `{chain}' in table `{table}' is incompatible, use 'nft' tool.", 1)
    if cmd.op in ("A", "I") and cmd.rule is not None and cmd.rule.target in NAT_TARGETS and table != "nat":
        nf.chain(table, chain or "")
        operation = "RULE_APPEND" if cmd.op == "A" else "RULE_INSERT"
        raise busy(operation, f"Invalid argument): rule in chain {chain}")  # the kernel refuses the batch


def execute(nf: Netfilter, cmd: Command) -> CommandResult:
    """Apply one parsed command to ``nf``; raise :class:`IptablesError` as iptables fails."""
    _refuse(nf, cmd)
    table, chain = cmd.table, cmd.chain
    if cmd.op == "A" and chain and cmd.rule:
        nf.append(table, chain, cmd.rule)
    elif cmd.op == "I" and chain and cmd.rule:
        nf.insert(table, chain, cmd.rule, cmd.number or 1)
    elif cmd.op == "D" and chain:
        nf.delete(table, chain, cmd.rule, cmd.number)
    elif cmd.op == "C" and chain and cmd.rule:
        if not nf.check(table, chain, cmd.rule):
            raise IptablesError("iptables: Bad rule (does a matching rule exist in that chain?).", 1)
    elif cmd.op == "N" and chain:
        nf.new_chain(table, chain)
    elif cmd.op == "X":
        nf.delete_chain(table, chain)
    elif cmd.op == "F":
        nf.flush(table, chain)
    elif cmd.op == "P" and chain and cmd.policy:
        nf.set_policy(table, chain, cmd.policy)
    elif cmd.op == "S":
        return CommandResult(0, list_rules(nf, table, chain, counters=cmd.verbose))
    elif cmd.op == "L":
        return CommandResult(0, list_table(nf, table, chain, cmd.numeric, cmd.line_numbers))
    return CommandResult(0)
