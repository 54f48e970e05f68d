"""Argument parsing for the simulated Slurm commands: argparse that reports a usage error instead of exiting."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """The command line is wrong; the message is what the real command would say about it."""


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises :class:`UsageError` where argparse would print and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(getopt_message(message))


def getopt_message(message: str) -> str:
    """argparse's complaint about an unknown option in glibc getopt's words, as Slurm's commands print it."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return message
    first = message[len(prefix) :].split(maxsplit=1)[0]
    if first.startswith("--"):
        return f"unrecognized option '{first.partition('=')[0]}'"
    if first.startswith("-") and len(first) > 1:
        return f"invalid option -- '{first[1]}'"
    return message
