"""``python -m runner`` run to its end as a child process, as an operator runs its one-shot subcommands
(``check``, ``jobs``, ``config``); the long-running ``dev`` and ``serve`` are in tests/integration/runner_process.py."""

from __future__ import annotations

import asyncio
import os
import sys


async def run_runner(*argv: str, clean_env: bool = False, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``python -m runner --log-level WARNING ARGV``; ``clean_env`` drops the
    caller's ``RUNNER_*`` variables (so only ``env``'s reach the child)."""
    base = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("RUNNER_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runner",
        "--log-level",
        "WARNING",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=base | (env or {}),
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def check_rows(out: str) -> list[list[str]]:
    """``runner check``'s rows (after its heading line), each split in four: check, target, result, detail."""
    return [line.split(None, 3) for line in out.splitlines()[1:]]


def check_table(out: str) -> dict[tuple[str, str], list[str]]:
    """:func:`check_rows` keyed by (check, target)."""
    return {(row[0], row[1]): row for row in check_rows(out)}
