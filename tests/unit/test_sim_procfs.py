"""The simulator's ``cat`` of /proc files: the node's text, coreutils' answer for a missing file, stdin without one."""

from __future__ import annotations

import pytest

from simulator.commands import CommandContext
from simulator.procfs import EPHEMERAL_RANGE, PROCFS, cat_command
from simulator.registry import STDIN_READERS

pytestmark = pytest.mark.unit


def context(files: dict[str, str] | None = None) -> CommandContext:
    return CommandContext(node=None, user="bwvisu", resolve=str, services={} if files is None else {PROCFS: files})


async def test_default_range_is_below_the_default_forwarding_range() -> None:
    result = await cat_command(context(), ["cat", EPHEMERAL_RANGE], b"")
    assert (result.exit_status, result.stdout) == (0, "32768\t49999\n")


async def test_a_node_of_its_own_and_a_missing_file() -> None:
    result = await cat_command(context({EPHEMERAL_RANGE: "1024\t65535\n"}), ["cat", EPHEMERAL_RANGE, "/nope"], b"")
    assert result.exit_status == 1
    assert result.stdout == "1024\t65535\n"
    assert result.stderr == "cat: /nope: No such file or directory\n"


async def test_without_a_file_cat_reads_stdin_and_only_then() -> None:
    assert STDIN_READERS["cat"](["cat"])
    assert not STDIN_READERS["cat"](["cat", EPHEMERAL_RANGE])
    assert (await cat_command(context(), ["cat"], b"hello\n")).stdout == "hello\n"
