"""Slurm hostlist syntax: expand ``vis[01-03,07],gpu5`` into host names and compress them back.

Expansion has one home, the stdlib-only keyhole client (:func:`runner.keyhole.client.expand_hostlist`, which
documents the grammar), because the same code must run inside the job; :func:`expand` here only maps its
``ValueError`` to :class:`HostlistError` (a 4xx with a code) where it enters the runner. Compression is the
runner's alone.

Host names are limited to letters, digits, ``.``, ``_`` and ``-`` and start with a letter or digit:
they end up in commands run on gateways, so anything else is refused. The number of hosts is
computed before anything is materialised, so a hostile list such as ``n[0-999999999999]`` costs
nothing but an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from runner.errors import HostlistError
from runner.keyhole import client

DEFAULT_MAX_HOSTS = client.MAX_HOSTS

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LAST_NUMBER = re.compile(r"^(.*?)([0-9]+)([^0-9]*)$")


def expand(hostlist: str, *, max_hosts: int = DEFAULT_MAX_HOSTS) -> list[str]:
    """Expand a hostlist into host names, in order, each name once.

    Raises :class:`HostlistError` if the list is malformed or would name more than ``max_hosts``
    hosts (counted before de-duplication, and before any name is built). ``""`` expands to ``[]``.
    """
    try:
        return client.expand_hostlist(hostlist, max_hosts)
    except ValueError as exc:
        public = str(exc) if str(exc) == client.TOO_MANY_HOSTS.format(max_hosts) else None
        raise HostlistError(public, internal=f"{exc}: {hostlist[:200]!r}") from None


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
