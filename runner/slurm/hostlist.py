"""Slurm hostlist syntax: expand ``vis[01-03,07],gpu5`` into host names and compress them back.

The grammar follows Slurm's: a comma-separated list of host expressions (commas inside brackets do
not separate), each a sequence of literal parts and bracket groups; a bracket group is a comma-separated
list of numbers and ``lo-hi`` ranges. Several groups in one expression (``r[1-2]n[01-02]``) give
their cartesian product, the leftmost group varying slowest. A range is zero-padded to the width of
its lower bound, as Slurm does (``[08-10]`` -> ``08 09 10``, ``[8-10]`` -> ``8 9 10``).

Host names are limited to letters, digits, ``.``, ``_`` and ``-`` and start with a letter or digit:
they end up in commands run on gateways, so anything else is refused here. The number of hosts is
computed before anything is materialised, so a hostile list such as ``n[0-999999999999]`` costs
nothing but an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from itertools import product

from runner.errors import HostlistError

DEFAULT_MAX_HOSTS = 100_000

_LITERAL = re.compile(r"[A-Za-z0-9._-]+")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LAST_NUMBER = re.compile(r"^(.*?)([0-9]+)([^0-9]*)$")


# A parsed host expression: literal strings and bracket groups (lists of (lo, hi, width)).
_Group = list[tuple[int, int, int]]
_Part = str | _Group


def _split_top_level(hostlist: str) -> list[str]:
    """Split on commas outside brackets, checking that brackets balance and do not nest."""
    items: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(hostlist):
        if ch == "[":
            if depth:
                raise HostlistError(internal=f"nested '[' at offset {i} in {hostlist!r}")
            depth = 1
        elif ch == "]":
            if not depth:
                raise HostlistError(internal=f"unmatched ']' at offset {i} in {hostlist!r}")
            depth = 0
        elif ch == "," and not depth:
            items.append(hostlist[start:i])
            start = i + 1
    if depth:
        raise HostlistError(internal=f"unclosed '[' in {hostlist!r}")
    items.append(hostlist[start:])
    return items


def _parse_group(body: str, expr: str) -> _Group:
    group: _Group = []
    for item in body.split(","):
        m = _RANGE.fullmatch(item)
        if m is None:
            raise HostlistError(internal=f"bad range {item!r} in {expr!r}")
        lo_text, hi_text = m.group(1), m.group(2)
        lo = int(lo_text)
        hi = lo if hi_text is None else int(hi_text)
        if hi < lo:
            raise HostlistError(internal=f"range {item!r} runs backwards in {expr!r}")
        group.append((lo, hi, len(lo_text)))
    return group


def _parse_expression(expr: str) -> list[_Part]:
    if not expr:
        raise HostlistError(internal="empty host name in hostlist")
    if not (expr[0].isascii() and expr[0].isalnum()) and expr[0] != "[":
        # a leading '-' would read as an option to the commands host names are passed to
        raise HostlistError(internal=f"host name {expr!r} must start with a letter or digit")
    parts: list[_Part] = []
    pos = 0
    while pos < len(expr):
        if expr[pos] == "[":
            end = expr.index("]", pos)  # balanced: checked by _split_top_level
            parts.append(_parse_group(expr[pos + 1 : end], expr))
            pos = end + 1
            continue
        m = _LITERAL.match(expr, pos)
        if m is None:
            raise HostlistError(internal=f"bad character {expr[pos]!r} in {expr!r}")
        parts.append(m.group(0))
        pos = m.end()
    return parts


def _group_size(group: _Group) -> int:
    return sum(hi - lo + 1 for lo, hi, _ in group)


def _expand_group(group: _Group) -> list[str]:
    return [f"{n:0{width}d}" for lo, hi, width in group for n in range(lo, hi + 1)]


def expand(hostlist: str, *, max_hosts: int = DEFAULT_MAX_HOSTS) -> list[str]:
    """Expand a hostlist into host names, in order, each name once.

    Raises :class:`HostlistError` if the list is malformed or would name more than ``max_hosts``
    hosts (counted before de-duplication, and before any name is built). ``""`` expands to ``[]``.
    """
    if hostlist == "":
        return []
    expressions = [_parse_expression(e) for e in _split_top_level(hostlist)]
    total = 0
    for parts in expressions:
        total += math.prod(_group_size(p) for p in parts if not isinstance(p, str))
        if total > max_hosts:
            raise HostlistError(f"hostlist names more than {max_hosts} hosts", internal=f"{hostlist[:200]!r}")
    hosts: dict[str, None] = {}
    for parts in expressions:
        choices = [[p] if isinstance(p, str) else _expand_group(p) for p in parts]
        for combo in product(*choices):
            hosts["".join(combo)] = None
    return list(hosts)


def _ranges(numbers: list[str]) -> list[str]:
    """Merge digit strings into ``lo-hi`` ranges whose padding reproduces every string exactly."""
    ordered = sorted(set(numbers), key=lambda s: (int(s), s))
    out: list[str] = []
    run: list[str] = []
    for digits in ordered:
        if run:
            lo, last = run[0], run[-1]
            if int(digits) == int(last) + 1 and f"{int(digits):0{len(lo)}d}" == digits:
                run.append(digits)
                continue
            out.append(lo if len(run) == 1 else f"{lo}-{last}")
        run = [digits]
    if run:
        out.append(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return out


def compress(hosts: Iterable[str]) -> str:
    """Compress host names into a canonical hostlist, brackets on the last number of each name.

    The result expands to the same set of names (duplicates dropped); names are grouped by what
    surrounds their last number and listed in sorted order, so equal sets give equal strings.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    plain: set[str] = set()
    for host in hosts:
        if _HOSTNAME.fullmatch(host) is None:
            raise HostlistError(internal=f"cannot compress host name {host!r}")
        m = _LAST_NUMBER.match(host)
        if m is None:
            plain.add(host)
        else:
            groups.setdefault((m.group(1), m.group(3)), []).append(m.group(2))
    pieces: list[tuple[str, str]] = [(h, h) for h in plain]
    for (prefix, suffix), numbers in groups.items():
        ranges = _ranges(numbers)
        if len(ranges) == 1 and "-" not in ranges[0]:
            text = f"{prefix}{ranges[0]}{suffix}"
        else:
            text = f"{prefix}[{','.join(ranges)}]{suffix}"
        pieces.append((f"{prefix}\0{suffix}", text))
    return ",".join(text for _, text in sorted(pieces))
