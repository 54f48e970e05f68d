"""Pure parsing of iptables rule specifications into canonical, hashable rules.

A :class:`Rule` holds what ``iptables -S`` prints, in iptables' canonical order (``-s -d -i -o -p``,
then matches in the order they were loaded, then ``-j`` and the target's options), so two spellings of
the same rule compare equal exactly when iptables would treat them as the same rule for ``-C``/``-D``.
Errors carry iptables' own texts and exit codes (:class:`IptablesError`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

VERSION = "iptables v1.8.9 (nf_tables)"
TRY_HELP = "Try `iptables -h' or 'iptables --help' for more information."
BUILTIN_TARGETS = frozenset({"ACCEPT", "DROP", "RETURN", "DNAT", "SNAT", "MASQUERADE", "REJECT", "LOG"})
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "all": "", "0": ""}
_NO_QUOTE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class IptablesError(Exception):
    """A failed iptables command: ``str(self)`` is the text iptables writes to stderr."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def parameter_problem(message: str) -> IptablesError:
    """iptables' PARAMETER_PROBLEM (exit 2), which prints the version prefix and the help hint."""
    return IptablesError(f"{VERSION}: {message}\n{TRY_HELP}", 2)


class MissingChain(IptablesError):
    """A jump to a chain that does not exist (nf_tables resolves a target name as a chain)."""


def missing_target_chain(name: str) -> IptablesError:
    return MissingChain(f"{VERSION}: Chain '{name}' does not exist\n{TRY_HELP}", 2)


def busy(operation: str, what: str) -> IptablesError:
    """The kernel refused an nf_tables batch: ``CHAIN_DEL``, ``RULE_APPEND``..., exit 4."""
    return IptablesError(f"{VERSION}:  {operation} failed ({what}", 4)


def no_such_chain() -> IptablesError:
    return IptablesError("iptables: No chain/target/match by that name.", 1)


def save_string(value: str) -> str:
    """Quote like libxtables' ``xtables_save_string``: bare when only ``[A-Za-z0-9_-]``, else quoted."""
    if value and all(c in _NO_QUOTE for c in value):
        return value
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in value)
    return f'"{escaped}"'


@dataclass(frozen=True)
class Match:
    """One loaded match module (``-m NAME``) and its options as ``(inverted, option, value)``."""

    name: str
    options: tuple[tuple[bool, str, str], ...] = ()

    def option(self, name: str) -> str | None:
        return next((value for _, opt, value in self.options if opt == name), None)


@dataclass(frozen=True)
class Rule:
    """A rule without its chain; equality is iptables' rule identity."""

    src: str | None = None
    dst: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    proto: str | None = None
    inverted: frozenset[str] = frozenset()
    matches: tuple[Match, ...] = ()
    target: str | None = None
    target_options: tuple[tuple[str, str], ...] = ()

    def spec(self) -> str:
        """The rule as ``iptables -S`` prints it after ``-A CHAIN``."""
        parts: list[str] = []
        for flag, value in (("-s", self.src), ("-d", self.dst), ("-i", self.in_iface)):
            if value is not None:
                parts.append(f"{'! ' if flag in self.inverted else ''}{flag} {value}")
        for flag, value in (("-o", self.out_iface), ("-p", self.proto)):
            if value is not None:
                parts.append(f"{'! ' if flag in self.inverted else ''}{flag} {value}")
        for match in self.matches:
            parts.append(f"-m {match.name}")
            for inv, opt, value in match.options:
                text = save_string(value) if opt == "--comment" else value
                parts.append(f"{'! ' if inv else ''}{opt} {text}")
        if self.target is not None:
            parts.append(f"-j {self.target}")
            parts.extend(f"{opt} {value}" for opt, value in self.target_options)
        return " ".join(parts)

    def dport(self) -> int | None:
        """The single destination port this rule is restricted to (``None`` for none, a range or ``!``)."""
        for match in self.matches:
            for inv, opt, value in match.options:
                if opt == "--dport" and not inv and value.isdigit():
                    return int(value)
        return None

    def comment(self) -> str | None:
        return next((m.option("--comment") for m in self.matches if m.name == "comment"), None)

    def target_option(self, name: str) -> str | None:
        return next((value for opt, value in self.target_options if opt == name), None)


def _address(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise parameter_problem(f"host/network `{value}' not found") from None
    if net.version != 4:
        raise parameter_problem(f"host/network `{value}' not found")
    return f"{net.network_address}/{net.prefixlen}"


def _port(value: str) -> str:
    pieces = value.split(":")
    if len(pieces) > 2 or not all(p.isdigit() and 0 <= int(p) <= 65535 for p in pieces):
        raise parameter_problem(f"invalid port/service `{value}' specified")
    return ":".join(str(int(p)) for p in pieces)


def _to_address(target: str, value: str) -> str:
    host, _, port = value.partition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise parameter_problem(f'Bad IP address "{host}"') from None
    if port and not all(p.isdigit() and 0 < int(p) <= 65535 for p in port.split("-")):
        raise parameter_problem(f"Port `{port}' not valid")
    return value


class RuleBuilder:
    """Accumulates rule options in argv order; :meth:`build` checks them and returns the :class:`Rule`."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.inverted: set[str] = set()
        self.matches: list[tuple[str, list[tuple[bool, str, str]]]] = []
        self.target: str | None = None
        self.target_options: list[tuple[str, str]] = []

    def _match(self, name: str) -> list[tuple[bool, str, str]]:
        for loaded, existing in self.matches:
            if loaded == name:
                return existing
        options: list[tuple[bool, str, str]] = []
        self.matches.append((name, options))
        return options

    def take(self, opt: str, value: str, invert: bool) -> None:  # noqa: PLR0912
        """Apply one option and its value; raise :class:`IptablesError` for what iptables rejects."""
        simple = {
            "-s": "-s",
            "--source": "-s",
            "-d": "-d",
            "--destination": "-d",
            "-i": "-i",
            "--in-interface": "-i",
            "-o": "-o",
            "--out-interface": "-o",
            "-p": "-p",
            "--protocol": "-p",
        }
        if opt in simple:
            flag = simple[opt]
            if flag in ("-s", "-d"):
                value = _address(value)
            elif flag == "-p":
                if value.lower() not in _PROTOCOLS:
                    raise parameter_problem(f'unknown protocol "{value}" specified')
                value = _PROTOCOLS[value.lower()]
            self.fields[flag] = value
            if invert:
                self.inverted.add(flag)
        elif opt in ("-m", "--match"):
            if value not in ("tcp", "udp", "comment"):
                raise parameter_problem(f"Couldn't load match `{value}':No such file or directory")
            self._match(value)
        elif opt in ("--dport", "--destination-port", "--sport", "--source-port"):
            proto = self.fields.get("-p")
            if proto not in ("tcp", "udp"):
                raise parameter_problem(f'unknown option "{opt}"')
            canonical = "--dport" if "d" in opt[2:3] else "--sport"
            self._match(proto).append((invert, canonical, _port(value)))
        elif opt == "--comment":
            if not any(name == "comment" for name, _ in self.matches):
                raise parameter_problem('unknown option "--comment"')
            if len(value) > 255:
                raise parameter_problem("COMMENT must be shorter than 256 characters")
            self._match("comment").append((False, "--comment", value))
        elif opt in ("-j", "--jump"):
            self.target = value
        elif opt in ("--to-destination", "--to-source"):
            wanted = "DNAT" if opt == "--to-destination" else "SNAT"
            if self.target != wanted:
                raise parameter_problem(f'unknown option "{opt}"')
            self.target_options.append((opt, _to_address(wanted, value)))
        else:
            raise parameter_problem(f'unknown option "{opt}"')

    def build(self) -> Rule:
        for target, option in (("DNAT", "--to-destination"), ("SNAT", "--to-source")):
            if self.target == target and not self.target_options:
                # the extension's message ends in a newline of its own: a blank line follows it
                raise parameter_problem(f'{target}: option "{option}" must be specified\n')
        proto = self.fields.get("-p")
        return Rule(
            src=self.fields.get("-s"),
            dst=self.fields.get("-d"),
            in_iface=self.fields.get("-i"),
            out_iface=self.fields.get("-o"),
            proto=proto or None,
            inverted=frozenset(self.inverted),
            matches=tuple(Match(name, tuple(options)) for name, options in self.matches),
            target=self.target,
            target_options=tuple(self.target_options),
        )


RULE_OPTIONS_WITH_VALUE = frozenset(
    {
        "-s",
        "--source",
        "-d",
        "--destination",
        "-i",
        "--in-interface",
        "-o",
        "--out-interface",
        "-p",
        "--protocol",
        "-m",
        "--match",
        "--dport",
        "--destination-port",
        "--sport",
        "--source-port",
        "--comment",
        "-j",
        "--jump",
        "--to-destination",
        "--to-source",
    }
)
