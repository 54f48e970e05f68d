"""Slurm hostlist expressions: ``sim-c[001-003,007]`` <-> a list of host names.

Compression follows Slurm: names are grouped by their non-numeric prefix, numeric suffixes keep their
zero-padding width, consecutive numbers become ranges, and groups are joined with commas.
"""

from __future__ import annotations

import re

_SUFFIX = re.compile(r"^(.*?)(\d+)$")


def compress(names: list[str]) -> str:
    """The compressed hostlist of ``names`` (order of first appearance of each prefix kept)."""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    order: list[tuple[str, int] | str] = []
    for name in names:
        match = _SUFFIX.match(name)
        if match is None:
            if name not in plain:
                plain.append(name)
                order.append(name)
            continue
        key = (match.group(1), len(match.group(2)))
        if key not in groups:
            groups[key] = []
            order.append(key)
        number = int(match.group(2))
        if number not in groups[key]:
            groups[key].append(number)
    parts: list[str] = []
    for item in order:
        if isinstance(item, str):
            parts.append(item)
            continue
        prefix, width = item
        numbers = sorted(groups[item])
        if len(numbers) == 1:
            parts.append(f"{prefix}{numbers[0]:0{width}d}")
            continue
        parts.append(f"{prefix}[{','.join(_ranges(numbers, width))}]")
    return ",".join(parts)


def _ranges(numbers: list[int], width: int) -> list[str]:
    out: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        out.append(f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}")
        if number is not None:
            start = prev = number
    return out


def expand(expression: str) -> list[str]:
    """All host names of a hostlist expression such as ``a[1-3],b07``."""
    names: list[str] = []
    for part in _split_top(expression):
        match = re.match(r"^([^\[]*)\[([^\]]*)\](.*)$", part)
        if match is None:
            if part:
                names.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for item in ranges.split(","):
            low, _, high = item.partition("-")
            width = len(low)
            for number in range(int(low), int(high or low) + 1):
                names.extend(f"{prefix}{number:0{width}d}{rest}" for rest in expand(suffix) or [""])
    return names


def _split_top(expression: str) -> list[str]:
    """Split at commas outside brackets."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in expression:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p]
