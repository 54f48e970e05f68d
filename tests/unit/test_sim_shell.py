"""The simulator's ``sh -c`` (lists, background jobs, ``wait``, groups) and coreutils' ``timeout``, as dash and
coreutils 9.1 answer them on Debian 12 (the texts and statuses below were taken from both)."""

from __future__ import annotations

import asyncio

import pytest

from simulator.commands import CommandContext, CommandResult, Handler
from simulator.shell import ShellSyntaxError, Unsupported, parse, sh_command
from simulator.testing import wait_for
from simulator.timeout import timeout_command

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

started: list[str] = []
cancelled: list[str] = []


async def _echo(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """``echo STATUS WORDS...``: prints its words, the effective user on stderr, exits STATUS."""
    return CommandResult(int(argv[1]) if argv[1:] else 0, f"{' '.join(argv)}\n", f"{ctx.user}\n")


async def _sleep(_ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """``sleep SECONDS``: prints its name when it starts sleeping and when it ends (or records its cancellation)."""
    started.append(argv[1])
    try:
        await asyncio.sleep(float(argv[1]))
    except asyncio.CancelledError:
        cancelled.append(argv[1])
        raise
    return CommandResult(0, f"slept {argv[1]}\n")


async def _killed(_ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    return CommandResult(137, "", "", signal="KILL")


HANDLERS: dict[str, Handler] = {
    "echo": _echo,
    "sleep": _sleep,
    "killed": _killed,
    "sh": sh_command,
    "timeout": timeout_command,
}


class _Node:
    class dispatcher:  # noqa: N801 - the attribute the shell looks up on a simulated node
        handlers = HANDLERS


def _ctx() -> CommandContext:
    return CommandContext(node=_Node(), user="bwvisu", resolve=dict[str, str]().__getitem__)


async def sh(script: str) -> CommandResult:
    return await sh_command(_ctx(), ["sh", "-c", script], b"")


async def timeout(*argv: str) -> CommandResult:
    return await timeout_command(_ctx(), ["timeout", *argv], b"")


@pytest.fixture(autouse=True)
def _clear() -> None:
    started.clear()
    cancelled.clear()


# --- sh -----------------------------------------------------------------------------------------------------


async def test_a_list_of_simple_commands_runs_in_order_with_the_last_status() -> None:
    result = await sh("echo 0 a; echo 3 'b c'")
    assert result == CommandResult(3, "echo 0 a\necho 3 b c\n", "bwvisu\nbwvisu\n")


async def test_background_jobs_run_concurrently_and_wait_waits_for_all() -> None:
    # started together, they end in order of their length, not of the script
    result = await sh("sleep 0.3 & sleep 0.05 & wait; echo 0 after")
    assert started == ["0.3", "0.05"]
    assert result == CommandResult(0, "slept 0.05\nslept 0.3\necho 0 after\n", "bwvisu\n")


async def test_wait_and_a_trailing_ampersand_exit_0_whatever_the_jobs_did() -> None:
    assert (await sh("echo 5 a & echo 6 b & wait")).exit_status == 0
    assert (await sh("echo 5 a &")) == CommandResult(0, "echo 5 a\n", "bwvisu\n")
    assert (await sh("wait")) == CommandResult(0)


async def test_background_groups_run_their_commands_in_turn() -> None:
    result = await sh("( sleep 0.2; echo 0 one ) & ( echo 4 two; echo 0 three ) & wait")
    assert result.exit_status == 0
    assert result.stdout == "echo 4 two\necho 0 three\nslept 0.2\necho 0 one\n"
    assert (await sh("(echo 0 a; echo 7 b)")).exit_status == 7
    assert (await sh("(echo 0 a;)&wait")).stdout == "echo 0 a\n"


async def test_cancelling_the_script_cancels_its_background_jobs() -> None:
    task = asyncio.create_task(sh("sleep 30 & sleep 31 & wait"))
    await wait_for(lambda: len(started) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["30", "31"]


async def test_unknown_commands_and_nested_sh_are_not_found() -> None:
    result = await sh("nope; echo 0")
    assert result.exit_status == 0
    assert "sh: 1: nope: not found\n" in result.stderr
    assert (await sh("sh -c 'echo 0'")).exit_status == 127


async def test_a_foreground_command_killed_by_a_signal_is_reported_like_dash() -> None:
    assert await sh("killed") == CommandResult(137, "", "Killed\n")
    assert await sh("killed & wait") == CommandResult(0)


async def test_quoted_operators_are_words() -> None:
    result = await sh("echo 0 '&' \";\" '(' a\\;b")
    assert result.stdout == "echo 0 & ; ( a;b\n"


@pytest.mark.parametrize(
    "script",
    [
        "echo 1 | echo 2",
        "echo $HOME",
        'echo "$HOME"',
        "echo 1 && echo 2",
        "echo 1 || echo 2",
        "echo 1 > f",
        "echo `id`",
        "echo *",
        "echo 1\necho 2",
        "((echo 1))",
        "(echo 1 & echo 2)",
        "wait 1",
        "X=1 echo 0",
        "if echo 0; then echo 1; fi",
        "{ echo 0; }",
    ],
)
async def test_what_it_does_not_simulate_is_refused(script: str) -> None:
    with pytest.raises(Unsupported):
        parse(script)
    result = await sh(script)
    assert result.exit_status == 2
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("& echo a", '"&" unexpected'),
        ("echo a & &", '"&" unexpected'),
        ("echo a & ; echo b", '";" unexpected'),
        (";", '";" unexpected'),
        ("echo a;;", '";;" unexpected'),
        ("(echo a", 'end of file unexpected (expecting ")")'),
        ("echo a)", '")" unexpected'),
        ("( )", '")" unexpected'),
        ("(echo a) echo b", "word unexpected"),
        ("echo (a)", 'word unexpected (expecting ")")'),
        ("echo 'a", "Unterminated quoted string"),
    ],
)
async def test_syntax_errors_are_dashs(script: str, message: str) -> None:
    with pytest.raises(ShellSyntaxError):
        parse(script)
    assert await sh(script) == CommandResult(2, "", f"sh: 1: Syntax error: {message}\n")


# --- timeout ------------------------------------------------------------------------------------------------


async def test_a_command_that_ends_in_time_answers_for_itself() -> None:
    assert await timeout("5", "echo", "3", "a") == CommandResult(3, "echo 3 a\n", "bwvisu\n")
    assert await timeout("0", "echo", "0") == CommandResult(0, "echo 0\n", "bwvisu\n")  # 0: no limit
    assert (await timeout("killed")).exit_status == 125  # no DURATION


async def test_a_command_over_time_is_ended_with_124_and_the_output_so_far() -> None:
    result = await timeout("0.2", "sh", "-c", "echo 0 first; sleep 30 & echo 0 second; wait")
    assert result == CommandResult(124, "echo 0 first\necho 0 second\n", "bwvisu\nbwvisu\n")
    assert cancelled == ["30"]


async def test_timeout_signal_kill_ends_in_death_by_kill() -> None:
    for option in (["-s", "KILL"], ["-sKILL"], ["--signal=kill"], ["-s", "9"], ["-s", "SIGKILL"]):
        result = await timeout(*option, "0.1", "sh", "-c", "echo 0 a; sleep 30")
        assert result == CommandResult(137, "echo 0 a\n", "bwvisu\n", signal="KILL")
    assert (await timeout("-s", "INT", "0.1", "sleep", "30")).exit_status == 124


async def test_a_command_killed_by_a_signal_of_its_own_passes_it_on() -> None:
    assert await timeout("5", "killed") == CommandResult(137, "", "", signal="KILL")


TRY = "Try 'timeout --help' for more information.\n"


@pytest.mark.parametrize(
    ("argv", "status", "stderr"),
    [
        (["abc", "echo"], 125, f"timeout: invalid time interval 'abc'\n{TRY}"),
        (["-1", "echo"], 125, f"timeout: option '-1' is not simulated\n{TRY}"),
        (["-s", "FOO", "1", "echo"], 125, f"timeout: 'FOO': invalid signal\n{TRY}"),
        (["1"], 125, TRY),
        (["-k", "1", "1", "echo"], 125, f"timeout: option '-k' is not simulated\n{TRY}"),
        (["--foreground", "1", "echo"], 125, f"timeout: option '--foreground' is not simulated\n{TRY}"),
        (["1", "nosuchcmd"], 127, "timeout: failed to run command 'nosuchcmd': No such file or directory\n"),
    ],
)
async def test_bad_usage_is_refused_like_coreutils(argv: list[str], status: int, stderr: str) -> None:
    assert await timeout(*argv) == CommandResult(status, "", stderr)


async def test_durations_take_coreutils_suffixes() -> None:
    assert (await timeout("1m", "echo", "0")).exit_status == 0
    assert (await timeout(".5s", "echo", "0")).exit_status == 0
    assert (await timeout("0.05s", "sleep", "30")).exit_status == 124
