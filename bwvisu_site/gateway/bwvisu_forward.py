#!/usr/bin/python3 -I
"""bwvisu-forward: the only thing the runner's account may run as root on a gateway (installed as
``/usr/local/sbin/bwvisu-forward``, allowed by ``sudoers``, limited by ``/etc/bwvisu/forward.conf``).

It edits the runner's two chains of the nat table and nothing else:

* ``bwvisu-forward ensure-chains``: create the DNAT chain and the MASQUERADE chain if missing and jump to them
  from ``PREROUTING`` / ``POSTROUTING`` (first rule) if not yet; never flushes a chain.
* ``bwvisu-forward list CHAIN``: ``iptables -t nat -S CHAIN`` of one of the two chains.
* ``bwvisu-forward restore``: the runner's ``iptables-restore --noflush`` text on stdin, one ``*nat`` block of
  ``-A``/``-D`` lines of the runner's own rule forms, each tagged ``--comment "bwvisu:<job id>"``::

      -A BWVISU -p tcp -m tcp --dport P -m comment --comment "bwvisu:J" -j DNAT --to-destination IP:PORT
      -A BWVISU-POST -d IP/32 -p tcp -m tcp --dport PORT -m comment --comment "bwvisu:J" -j MASQUERADE

  An addition's gateway port ``P`` must lie in ``ports`` and ``IP`` in ``compute-networks``; a deletion may name
  any rule of these forms (it can only take the runner's own rules away, also after the limits were narrowed).
  Every line is checked before anything runs; the accepted text goes to ``iptables-restore --noflush`` as one
  transaction. The ``*nat`` block may be followed (or, alone, replaced) by one ``*filter`` block of counting
  rules in the accounting chain (idle sessions), which have no target, so they count and never decide::

      -A BWVISU-ACCT -d IP/32 -p tcp -m tcp --dport PORT -m comment --comment "bwvisu:J"

* ``bwvisu-forward ensure-accounting``: create the filter table's accounting chain if missing and jump to it from
  ``FORWARD`` (first rule) if not yet; never flushes.
* ``bwvisu-forward counters CHAIN``: ``iptables -w -t filter -S CHAIN -v`` of the accounting chain: its rules
  with their packet and byte counters. Nothing can zero them.

Anything else is refused with one line on stderr (``bwvisu-forward: refused: ...``) and a status of its own,
before iptables runs: 64 for a malformed command line, 65 for a refused request or input, 75 when another
bwvisu-forward holds the lock too long, 78 for a missing or unsafe configuration. Otherwise the status and output
are iptables'. Edits are serialised with ``flock`` on a root-only lock file. Nothing comes from the caller's
environment, and the configuration's path is fixed. Needs Python 3.9 or newer, standard library only.
"""

from __future__ import annotations

import configparser
import fcntl
import ipaddress
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PROG = "bwvisu-forward"
CONFIG_PATH = Path("/etc/bwvisu/forward.conf")
LOCK_PATH = Path("/run/bwvisu-forward.lock")
LOCK_WAIT_SECONDS = 30.0
EXIT_USAGE, EXIT_REFUSED, EXIT_BUSY, EXIT_CONFIG = 64, 65, 75, 78
MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 512
TAG_PREFIX = "bwvisu:"
_JOB_TAG = re.compile(r'"bwvisu:[A-Za-z0-9][A-Za-z0-9._-]{0,127}"')
_CHAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,27}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
# The runner's two rule forms, word for word; the words in _SLOTS are the values each rule fills in.
DNAT_FORM = ("-p", "tcp", "-m", "tcp", "--dport", "PORT", "-m", "comment", "--comment", "TAG",
             "-j", "DNAT", "--to-destination", "TARGET")  # fmt: skip
MASQUERADE_FORM = ("-d", "HOST", "-p", "tcp", "-m", "tcp", "--dport", "PORT", "-m", "comment", "--comment", "TAG",
                   "-j", "MASQUERADE")  # fmt: skip
COUNTING_FORM = ("-d", "HOST", "-p", "tcp", "-m", "tcp", "--dport", "PORT", "-m", "comment", "--comment", "TAG")
_SLOTS = frozenset({"PORT", "TAG", "TARGET", "HOST"})
_OPTIONS = frozenset(w for w in DNAT_FORM + MASQUERADE_FORM if w.startswith("-"))
_IPTABLES_COMMANDS = frozenset({
    "-A", "--append", "-D", "--delete", "-I", "--insert", "-R", "--replace", "-F", "--flush", "-X", "--delete-chain",
    "-P", "--policy", "-N", "--new-chain", "-Z", "--zero", "-E", "--rename-chain", "-S", "--list-rules", "-L",
    "--list", "-C", "--check",
})  # fmt: skip


class Refusal(Exception):
    """A request the helper will not carry out; ``str(self)`` is the reason, :attr:`status` the exit status."""

    status = EXIT_REFUSED

    def text(self) -> str:
        """The line written to stderr."""
        return f"{PROG}: refused: {self}\n"


class UsageRefusal(Refusal):
    status = EXIT_USAGE


class ConfigRefusal(Refusal):
    status = EXIT_CONFIG

    def text(self) -> str:
        return f"{PROG}: configuration: {self}\n"


class BusyRefusal(Refusal):
    status = EXIT_BUSY


@dataclass(frozen=True)
class Limits:
    """What the configuration allows: gateway ports, where forwards may lead, the chains, the programs."""

    port_min: int
    port_max: int
    networks: tuple[ipaddress.IPv4Network, ...]
    dnat_chain: str = "BWVISU"
    snat_chain: str = "BWVISU-POST"
    iptables: str = "/usr/sbin/iptables"
    iptables_restore: str = "/usr/sbin/iptables-restore"
    accounting_chain: str = "BWVISU-ACCT"

    @property
    def chains(self) -> tuple[tuple[str, str], ...]:
        """Each chain of the runner's with the built-in chain that jumps to it."""
        return ((self.dnat_chain, "PREROUTING"), (self.snat_chain, "POSTROUTING"))


def render_config(limits: Limits) -> str:
    """The configuration file that :func:`parse_config` reads back as ``limits``."""
    networks = " ".join(str(n) for n in limits.networks)
    return (
        "[forward]\n"
        f"ports = {limits.port_min}-{limits.port_max}\n"
        f"compute-networks = {networks}\n"
        f"dnat-chain = {limits.dnat_chain}\n"
        f"snat-chain = {limits.snat_chain}\n"
        f"iptables = {limits.iptables}\n"
        f"iptables-restore = {limits.iptables_restore}\n"
        f"accounting-chain = {limits.accounting_chain}\n"
    )


def parse_config(text: str) -> Limits:
    """The ``[forward]`` section; every problem is a :class:`ConfigRefusal` naming the key."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ConfigRefusal(f"cannot parse: {exc}") from None
    if parser.sections() != ["forward"]:
        raise ConfigRefusal("needs exactly one section, [forward]")
    section = dict(parser["forward"])
    known = {"ports", "compute-networks", "dnat-chain", "snat-chain", "accounting-chain"}
    known |= {"iptables", "iptables-restore"}
    unknown = set(section) - known
    if unknown:
        raise ConfigRefusal(f"unknown keys: {', '.join(sorted(unknown))}")
    if "ports" not in section or "compute-networks" not in section:
        raise ConfigRefusal("ports and compute-networks are required")
    low, _, high = section["ports"].partition("-")
    if not (_PORT.fullmatch(low.strip()) and _PORT.fullmatch(high.strip())):
        raise ConfigRefusal(f"ports must read MIN-MAX, got {section['ports']!r}")
    port_min, port_max = int(low), int(high)
    if not 1 <= port_min <= port_max <= 65535:
        raise ConfigRefusal(f"ports {port_min}-{port_max} is not a range within 1-65535")
    networks = tuple(_network(word) for word in section["compute-networks"].replace(",", " ").split())
    if not networks:
        raise ConfigRefusal("compute-networks names no network")
    defaults = Limits(port_min, port_max, networks)
    dnat = section.get("dnat-chain", defaults.dnat_chain)
    snat = section.get("snat-chain", defaults.snat_chain)
    counting = section.get("accounting-chain", defaults.accounting_chain)
    for chain in (dnat, snat, counting):
        if not _CHAIN_NAME.fullmatch(chain) or chain in _BUILTIN_CHAINS:
            raise ConfigRefusal(f"chain name {chain!r} is not a user chain's name")
    if dnat == snat:
        raise ConfigRefusal("dnat-chain and snat-chain must differ")
    programs = [section.get("iptables", defaults.iptables), section.get("iptables-restore", defaults.iptables_restore)]
    for program in programs:
        if not program.startswith("/"):
            raise ConfigRefusal(f"program {program!r} must be an absolute path")
    return Limits(port_min, port_max, networks, dnat, snat, programs[0], programs[1], counting)


def _network(word: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.IPv4Network(word)
    except ValueError as exc:
        raise ConfigRefusal(f"compute-networks: {exc}") from None
    if network.prefixlen == 0:
        raise ConfigRefusal("compute-networks: 0.0.0.0/0 would allow forwards anywhere")
    return network


def check_owner(item: Path, owner: int, mode: int, euid: int) -> None:
    """Refuse a configuration file or folder that ``euid`` does not own or that others may write."""
    if owner != euid or mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigRefusal(f"{item} must belong to uid {euid} and be writable by no one else")


def load_config(path: Path = CONFIG_PATH) -> Limits:
    """Read ``path``, which (like its folder) must belong to this process's user (root) and be writable by no other."""
    try:
        for item in (path.parent, path):
            info = item.stat()
            check_owner(item, info.st_uid, info.st_mode, os.geteuid())
        return parse_config(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigRefusal(f"cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class Request:
    """A parsed command line: ``action`` is ``ensure-chains``, ``list``, ``restore``, ``ensure-accounting`` or
    ``counters``."""

    action: str
    chain: str | None = None


def parse_args(argv: Sequence[str]) -> Request:
    """The command line's shape; which chains ``list`` may name is :func:`check_request`'s business."""
    if len(argv) == 1 and argv[0] in ("ensure-chains", "restore", "ensure-accounting"):
        return Request(argv[0])
    if len(argv) == 2 and argv[0] in ("list", "counters"):
        return Request(argv[0], argv[1])
    shown = " ".join(argv)[:200]
    raise UsageRefusal(
        f"usage: {PROG} ensure-chains | list CHAIN | restore | ensure-accounting | counters CHAIN (got {shown!r})"
    )


def check_request(request: Request, limits: Limits) -> None:
    if request.action == "list" and request.chain not in (limits.dnat_chain, limits.snat_chain):
        raise Refusal(f"chain {request.chain!r} is not the runner's ({limits.dnat_chain}, {limits.snat_chain})")
    if request.action == "counters" and request.chain != limits.accounting_chain:
        raise Refusal(f"chain {request.chain!r} is not the runner's accounting chain ({limits.accounting_chain})")


def list_argv(chain: str, limits: Limits) -> list[str]:
    return [limits.iptables, "-t", "nat", "-S", chain]


def counters_argv(limits: Limits) -> list[str]:
    return [limits.iptables, "-w", "-t", "filter", "-S", limits.accounting_chain, "-v"]


def restore_argv(limits: Limits) -> list[str]:
    return [limits.iptables_restore, "--noflush"]


def ensure_steps(limits: Limits) -> Generator[list[str], int, str | None]:
    """Chain set-up, free of I/O: yields check commands, is sent their exit statuses, returns restore input.

    ``-S CHAIN`` fails when the chain is missing, ``-C HOOK -j CHAIN`` when the jump is; ``None`` when nothing
    is missing. A new chain is declared (``:CHAIN``), which with ``--noflush`` flushes an existing one: hence the
    checks first, under the lock.
    """
    declare: list[str] = []
    jumps: list[str] = []
    for chain, hook in limits.chains:
        exists = (yield [limits.iptables, "-t", "nat", "-S", chain]) == 0
        if not exists:
            declare.append(f":{chain} - [0:0]")
        if not exists or (yield [limits.iptables, "-t", "nat", "-C", hook, "-j", chain]) != 0:
            jumps.append(f"-I {hook} 1 -j {chain}")
    if not declare and not jumps:
        return None
    return "\n".join(["*nat", *declare, *jumps, "COMMIT"]) + "\n"


def accounting_steps(limits: Limits) -> Generator[list[str], int, str | None]:
    """:func:`ensure_steps` for the filter table's accounting chain and its ``FORWARD`` jump."""
    chain = limits.accounting_chain
    exists = (yield [limits.iptables, "-t", "filter", "-S", chain]) == 0
    if exists and (yield [limits.iptables, "-t", "filter", "-C", "FORWARD", "-j", chain]) == 0:
        return None
    declare = [] if exists else [f":{chain} - [0:0]"]
    return "\n".join(["*filter", *declare, f"-I FORWARD 1 -j {chain}", "COMMIT"]) + "\n"


def validate_restore(data: bytes, limits: Limits) -> str:
    """The restore input, if every line is one the runner may send; else :class:`Refusal` naming the line.

    One ``*nat`` block, then at most one ``*filter`` block of counting rules; either may stand alone.
    """
    lines = _lines(data)
    table: str | None = None
    seen: list[str] = []
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        if table is None:
            if (line == "*filter" and "filter" not in seen) or (line == "*nat" and not seen):
                table = line[1:]
                seen.append(table)
                continue
            if seen:
                raise Refusal(f"{where}: nothing may follow COMMIT but one *filter block of counting rules")
            shown = f"table {line[1:]!r}" if line.startswith("*") else repr(line[:40])
            raise Refusal(f"{where}: {shown} is not allowed: the input must start with *nat (or *filter)")
        if line == "COMMIT":
            table = None
        elif table == "nat":
            check_rule_line(line, limits, where)
        else:
            check_counting_line(line, limits, where)
    if table is not None:
        raise Refusal(f"line {len(lines)}: COMMIT missing at the end of the *{table} block")
    return "\n".join(lines) + "\n"


def check_counting_line(line: str, limits: Limits, where: str) -> None:
    """One ``-A``/``-D`` line of the counting rule form in the accounting chain; anything else is refused."""
    words = line.split(" ")
    if "" in words:
        raise Refusal(f"{where}: words must be separated by single spaces")
    op, chain, spec = words[0], (words[1] if len(words) > 1 else ""), words[2:]
    _check_operation(op, line, where)
    if chain != limits.accounting_chain:
        raise Refusal(f"{where}: chain {chain[:40]!r} is not the runner's accounting chain ({limits.accounting_chain})")
    for i, word in enumerate(spec):
        if word == "!":
            raise Refusal(f"{where}: negation (!) is not allowed")
        if word in ("-j", "-g", "--jump", "--goto"):
            raise Refusal(f"{where}: a counting rule has no target ({word} is not allowed)")
        if word.startswith("-") and word not in COUNTING_FORM:
            raise Refusal(f"{where}: option {word.split('=')[0][:40]!r} is not allowed")
        value = spec[i + 1] if i + 1 < len(spec) else ""
        if word == "-m" and value not in ("tcp", "comment"):
            raise Refusal(f"{where}: match {value[:40]!r} is not allowed (only tcp and comment)")
    if len(spec) != len(COUNTING_FORM) or any(w != f for w, f in zip(spec, COUNTING_FORM) if f not in _SLOTS):
        raise Refusal(f"{where}: not the runner's counting rule form: {' '.join(COUNTING_FORM)}")
    values = {f: w for w, f in zip(spec, COUNTING_FORM) if f in _SLOTS}
    if not _JOB_TAG.fullmatch(values["TAG"]):
        raise Refusal(f'{where}: comment {values["TAG"][:60]} is not a job tag "{TAG_PREFIX}<job id>"')
    _port_of(values["PORT"], where)
    host, slash, prefix = values["HOST"].partition("/")
    if (slash, prefix) != ("/", "32"):
        raise Refusal(f"{where}: -d must name one host (ADDRESS/32)")
    _check_host(host, limits, where, op == "-A")


def _lines(data: bytes) -> list[str]:
    """The input's lines: bounded, ASCII, printable, none empty."""
    if len(data) > MAX_INPUT_BYTES:
        raise Refusal(f"input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Refusal(f"input is not ASCII (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise Refusal("input is empty")
    for number, line in enumerate(lines, start=1):
        bad = next((c for c in line if not " " <= c <= "~"), None)
        if bad is not None:
            raise Refusal(f"line {number}: control character 0x{ord(bad):02x}")
        if len(line) > MAX_LINE_CHARS:
            raise Refusal(f"line {number}: longer than {MAX_LINE_CHARS} characters")
        if not line:
            raise Refusal(f"line {number}: empty lines are not allowed")
    return lines


def check_rule_line(line: str, limits: Limits, where: str) -> None:
    """One ``-A``/``-D`` line of the runner's forms in the runner's chains; anything else is refused."""
    words = line.split(" ")
    if "" in words:
        raise Refusal(f"{where}: words must be separated by single spaces")
    op, chain, spec = words[0], (words[1] if len(words) > 1 else ""), words[2:]
    _check_operation(op, line, where)
    if chain not in (limits.dnat_chain, limits.snat_chain):
        raise Refusal(f"{where}: chain {chain[:40]!r} is not the runner's ({limits.dnat_chain}, {limits.snat_chain})")
    dnat = chain == limits.dnat_chain
    form, target = (DNAT_FORM, "DNAT") if dnat else (MASQUERADE_FORM, "MASQUERADE")
    _check_options(spec, chain, target, where)
    if len(spec) != len(form) or any(w != f for w, f in zip(spec, form) if f not in _SLOTS):
        raise Refusal(f"{where}: not the runner's {target} rule form: {' '.join(form)}")
    values = {f: w for w, f in zip(spec, form) if f in _SLOTS}
    if not _JOB_TAG.fullmatch(values["TAG"]):
        raise Refusal(f'{where}: comment {values["TAG"][:60]} is not a job tag "{TAG_PREFIX}<job id>"')
    adding = op == "-A"
    if dnat:
        port = _port_of(values["PORT"], where)
        if adding and not limits.port_min <= port <= limits.port_max:
            raise Refusal(f"{where}: port {port} is outside {limits.port_min}-{limits.port_max}")
        host, colon, internal = values["TARGET"].rpartition(":")
        if not colon:
            raise Refusal(f"{where}: --to-destination must read ADDRESS:PORT")
        _port_of(internal, where)
    else:
        _port_of(values["PORT"], where)
        host, slash, prefix = values["HOST"].partition("/")
        if (slash, prefix) != ("/", "32"):
            raise Refusal(f"{where}: -d must name one host (ADDRESS/32)")
    _check_host(host, limits, where, adding)


def _check_operation(op: str, line: str, where: str) -> None:
    if op.startswith(":"):
        raise Refusal(f"{where}: chain declarations are not allowed (with --noflush they flush the chain)")
    if op.startswith("*"):
        raise Refusal(f"{where}: a second table block is not allowed")
    if op in ("-A", "-D"):
        return
    if op in _IPTABLES_COMMANDS:
        raise Refusal(f"{where}: command {op!r} is not allowed: only -A and -D of the runner's rules")
    raise Refusal(f"{where}: {line[:40]!r} is not an -A or -D line")


def _check_options(spec: list[str], chain: str, target: str, where: str) -> None:
    """Refuse, by name, any option, match or target outside the runner's forms, and a rule without a job tag."""
    for i, word in enumerate(spec):
        if word == "!":
            raise Refusal(f"{where}: negation (!) is not allowed")
        if word.startswith("-") and word not in _OPTIONS:
            raise Refusal(f"{where}: option {word.split('=')[0][:40]!r} is not allowed")
        value = spec[i + 1] if i + 1 < len(spec) else ""
        if word == "-m" and value not in ("tcp", "comment"):
            raise Refusal(f"{where}: match {value[:40]!r} is not allowed (only tcp and comment)")
        if word == "-j" and value != target:
            raise Refusal(f"{where}: target {value[:40]!r} is not allowed in {chain} (only {target})")
    if "--comment" not in spec:
        raise Refusal(f'{where}: the rule carries no job tag (-m comment --comment "{TAG_PREFIX}<job id>")')


def _port_of(word: str, where: str) -> int:
    if not _PORT.fullmatch(word) or int(word) > 65535:
        raise Refusal(f"{where}: {word[:20]!r} is not a port")
    return int(word)


def _check_host(word: str, limits: Limits, where: str, adding: bool) -> None:
    try:
        address = ipaddress.IPv4Address(word)
    except ValueError:
        raise Refusal(f"{where}: {word[:40]!r} is not an IPv4 address") from None
    if adding and not any(address in network for network in limits.networks):
        networks = " ".join(str(n) for n in limits.networks)
        raise Refusal(f"{where}: {address} is outside the compute networks ({networks})")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (a root-only file: no other user can open it to hold the lock)."""
    wait = LOCK_WAIT_SECONDS
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BusyRefusal(f"another {PROG} held {path} for {wait:.0f} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _run(argv: list[str], stdin: str | None = None, quiet: bool = False) -> int:
    out = subprocess.DEVNULL if quiet else None
    data = None if stdin is None else stdin.encode("ascii")
    return subprocess.run(argv, input=data, stdout=out, stderr=out, env=_ENV, check=False).returncode


def _execute(request: Request, limits: Limits, stdin: BinaryIO, lock: Path) -> int:
    if request.action == "list":
        assert request.chain is not None
        return _run(list_argv(request.chain, limits))
    if request.action == "counters":
        return _run(counters_argv(limits))
    if request.action == "restore":
        text = validate_restore(stdin.read(MAX_INPUT_BYTES + 1), limits)
        with _locked(lock):
            return _run(restore_argv(limits), text)
    with _locked(lock):
        if request.action == "ensure-accounting":
            return _ensure_chains(limits, accounting_steps(limits))
        return _ensure_chains(limits, ensure_steps(limits))


def _ensure_chains(limits: Limits, steps: Generator[list[str], int, str | None]) -> int:
    try:
        argv = next(steps)
        while True:
            argv = steps.send(_run(argv, quiet=True))
    except StopIteration as done:
        setup: str | None = done.value
    return 0 if setup is None else _run(restore_argv(limits), setup)


def main(
    argv: Sequence[str] | None = None,
    config: Path = CONFIG_PATH,
    stdin: BinaryIO | None = None,
    lock: Path = LOCK_PATH,
) -> int:
    """Run one request; returns the exit status. The keywords are for tests: the command line cannot set them."""
    try:
        request = parse_args(sys.argv[1:] if argv is None else argv)
        limits = load_config(config)
        check_request(request, limits)
        return _execute(request, limits, stdin or sys.stdin.buffer, lock)
    except Refusal as exc:
        sys.stderr.write(exc.text())
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
