"""Slurm's time syntaxes: parsing ``--time`` values and formatting durations and timestamps.

Parsing follows Slurm's ``time_str2mins``: "minutes", "minutes:seconds", "hours:minutes:seconds",
"days-hours", "days-hours:minutes", "days-hours:minutes:seconds"; seconds round up to a whole minute;
"-1", "INFINITE" and "UNLIMITED" mean no limit. Formatting reproduces squeue's compact elapsed style
(``M:SS``), the ``HH:MM:SS`` style of sacct/scontrol, and ISO timestamps without a zone.
"""

from __future__ import annotations

import re
import time

UNLIMITED = None
"""A time limit of None means UNLIMITED."""


class TimeFormatError(ValueError):
    """The string is not one of Slurm's time formats."""


_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$")
_CLOCK = re.compile(r"^(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time_limit(text: str) -> int | None:
    """Minutes for a Slurm time string; None for an unlimited one; :class:`TimeFormatError` if invalid."""
    text = text.strip()
    if text.upper() in {"-1", "INFINITE", "UNLIMITED"}:
        return UNLIMITED
    days_match = _DAYS.match(text)
    if days_match is not None:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in days_match.groups())
    else:
        clock = _CLOCK.match(text)
        if clock is None:
            raise TimeFormatError(text)
        parts = [int(g) for g in clock.groups() if g is not None]
        days = 0
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts
    total = ((days * 24 + hours) * 60 + minutes) + (1 if seconds > 0 else 0)
    # Slurm: "A time limit of zero requests that no time limit be imposed."
    return UNLIMITED if total == 0 else total


def squeue_secs(seconds: int) -> str:
    """squeue's elapsed style: ``M:SS``, ``H:MM:SS`` or ``D-HH:MM:SS``."""
    seconds = max(seconds, 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def squeue_limit(minutes: int | None) -> str:
    """squeue's %l: ``UNLIMITED`` or the limit in squeue's elapsed style."""
    return "UNLIMITED" if minutes is None else squeue_secs(minutes * 60)


def clock_secs(seconds: int) -> str:
    """sacct/scontrol style: ``HH:MM:SS`` or ``D-HH:MM:SS``."""
    seconds = max(seconds, 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def clock_limit(minutes: int | None) -> str:
    return "UNLIMITED" if minutes is None else clock_secs(minutes * 60)


def timestamp(epoch: float | None, missing: str = "Unknown") -> str:
    """Slurm's ISO local time without zone, e.g. ``2024-05-01T12:00:00``; ``missing`` when unset."""
    if epoch is None:
        return missing
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))
