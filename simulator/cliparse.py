"""Argument parsing for the simulated Slurm commands: argparse that reports a usage error instead of exiting."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """The command line is wrong; the message is what the real command would say about it."""


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` where argparse would print and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)
