"""``sh -c SCRIPT`` for the small scripts the runner sends, answered as Debian's ``sh`` (dash) answers them.

Simulated nodes run no real shell (:mod:`simulator.dispatch`), but a runner may batch several commands into
one SSH call: one ``nc -z`` per compute host in a readiness sweep (``nc ...; nc ...``), or all of them at once
in a request's probe (``nc ... & nc ... & wait``). The subset simulated:

* simple commands (words, quoted or not) run through the node's own handlers as the effective user;
* lists: ``;`` runs the command and goes on, ``&`` starts it in the background and goes on at once;
* subshell groups ``( cmd; cmd )`` of simple commands, in the foreground or the background;
* ``wait`` without arguments: waits for every background job; its status is 0, whatever theirs.

The exit status is that of the last foreground item (0 if the script ended with ``&``), as in dash; output is
collected as each command ends, so concurrent commands' lines interleave by completion, as on a real node.
Background jobs still running at the end are waited for (sshd keeps the channel open until they close their
output), and a cancelled script (``timeout``) cancels them, as ``timeout`` signals the whole process group.
Anything beyond the subset (pipes, redirections, ``&&``, variables, globs, nested groups, ``wait`` with
arguments) is refused with exit 2, never guessed at; misplaced operators get dash's syntax error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.commands import CommandContext, CommandResult, Handler, Streams

MAX_COMMANDS = 1000
_UNSUPPORTED = "sh: only lists of simple commands and ( ) groups separated by ';' or '&' are simulated\n"
_OPERATORS = frozenset(";&()")
_REFUSED = frozenset("|<>$`*?[~#\n")
_RESERVED = frozenset(
    {"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while"}
)


class Unsupported(Exception):
    """The script uses shell syntax the simulator does not run."""


class ShellSyntaxError(Exception):
    """dash would refuse the script; the text is dash's message after ``Syntax error: ``."""


@dataclass(frozen=True)
class Operator:
    text: str


@dataclass(frozen=True)
class Item:
    """One list item: its simple commands in order (several only in a ``( )`` group) and whether it ends in ``&``."""

    commands: tuple[tuple[str, ...], ...]
    background: bool = False


def tokens(script: str) -> list[str | Operator]:
    """Words (quotes removed) and operators; raises :class:`Unsupported` or :class:`ShellSyntaxError`."""
    out: list[str | Operator] = []
    word: list[str] | None = None
    chars = iter(script)
    previous = ""
    for char in chars:
        if char in "'\"":
            word = [*(word or []), *_quoted(char, chars)]
        elif char == "\\":
            escaped = next(chars, "\n")
            if escaped == "\n":
                raise Unsupported  # line continuation
            word = [*(word or []), escaped]
        elif char in " \t" or char in _OPERATORS:
            if word is not None:
                out.append("".join(word))
                word = None
            if char == previous == "&":
                raise Unsupported  # "&&"
            if char == previous == ";":
                raise ShellSyntaxError('";;" unexpected')
            if char in _OPERATORS:
                out.append(Operator(char))
        elif char in _REFUSED:
            raise Unsupported
        else:
            word = [*(word or []), char]
        previous = char
    if word is not None:
        out.append("".join(word))
    return out


def _quoted(quote: str, chars: Iterator[str]) -> list[str]:
    """The rest of a quoted string, quotes removed; ``$`` and backquotes refused inside double quotes."""
    text: list[str] = []
    for char in chars:
        if char == quote:
            return text
        if quote == '"' and char in "$`":
            raise Unsupported
        if quote == '"' and char == "\\":
            escaped = next(chars, "")
            if escaped != "\n":  # backslash-newline is a line continuation: both go
                text += [escaped] if escaped in '$`"\\' else ["\\", escaped]
        else:
            text.append(char)
    raise ShellSyntaxError("Unterminated quoted string")


def parse(script: str) -> list[Item]:
    """The script's list items; raises :class:`Unsupported` or :class:`ShellSyntaxError`."""
    words = tokens(script)
    items: list[Item] = []
    pos = 0
    while pos < len(words):
        token = words[pos]
        if token == Operator("("):
            group, pos = _group(words, pos + 1)
        elif isinstance(token, Operator):
            raise ShellSyntaxError(f'"{token.text}" unexpected')
        else:
            end = next((i for i in range(pos, len(words)) if isinstance(words[i], Operator)), len(words))
            group, pos = (tuple(str(w) for w in words[pos:end]),), end
            if pos < len(words) and words[pos] == Operator("("):
                raise ShellSyntaxError('word unexpected (expecting ")")')
        terminator = words[pos] if pos < len(words) else None
        if isinstance(terminator, str):
            raise ShellSyntaxError("word unexpected")
        if terminator == Operator(")"):
            raise ShellSyntaxError('")" unexpected')
        items.append(Item(group, background=terminator == Operator("&")))
        pos += 1
    for command in (c for item in items for c in item.commands):
        if command[0] in _RESERVED or "=" in command[0] or (command[0] == "wait" and len(command) > 1):
            raise Unsupported  # compound commands, assignments, waiting for particular jobs
    return items


def _group(words: list[str | Operator], pos: int) -> tuple[tuple[tuple[str, ...], ...], int]:
    """Simple commands up to the matching ``)``; returns them and the position after it."""
    commands: list[tuple[str, ...]] = [()]
    while pos < len(words):
        token = words[pos]
        pos += 1
        if token == Operator(")"):
            done = tuple(c for c in commands if c)
            if not done:
                raise ShellSyntaxError('")" unexpected')
            return done, pos
        if token == Operator(";"):
            if not commands[-1]:
                raise ShellSyntaxError('";" unexpected')
            commands.append(())
        elif isinstance(token, Operator):
            raise Unsupported  # nested groups, background jobs inside a group
        else:
            commands[-1] += (token,)
    raise ShellSyntaxError('end of file unexpected (expecting ")")')


def handlers_of(ctx: CommandContext) -> dict[str, Handler]:
    """The handlers of the node a command runs on (none outside a cluster)."""
    dispatcher = getattr(ctx.node, "dispatcher", None)
    handlers = getattr(dispatcher, "handlers", None)
    return handlers if isinstance(handlers, dict) else {}


class _Script:
    """One running script: its handlers, where output goes, its background jobs."""

    def __init__(self, ctx: CommandContext, streams: Streams) -> None:
        self.handlers = handlers_of(ctx)
        self.child = dataclasses.replace(ctx, streams=None)
        self.streams = streams
        self.background: list[asyncio.Task[tuple[int, str | None]]] = []

    async def simple(self, words: tuple[str, ...]) -> tuple[int, str | None]:
        """Run one simple command; its status and the signal that ended it, if one did."""
        if words[0] == "wait":  # outside the top level (in a group or a job) there is nothing to wait for
            return 0, None
        handler = self.handlers.get(words[0])
        if handler is None or words[0] == "sh":
            self.streams.stderr.append(f"sh: 1: {words[0]}: not found\n")
            return 127, None
        result = await handler(self.child, list(words), b"")
        self.streams.write(result)
        return result.exit_status, result.signal

    async def item(self, item: Item) -> tuple[int, str | None]:
        status, killed_by = 0, None
        for words in item.commands:
            status, killed_by = await self.simple(words)
        return status, killed_by

    async def run(self, items: list[Item]) -> int:
        status = 0
        try:
            for item in items:
                if item.background:
                    self.background.append(asyncio.create_task(self.item(item)))
                    status = 0
                elif item.commands == (("wait",),):
                    await self.wait()
                    status = 0
                else:
                    status, killed_by = await self.item(item)
                    if killed_by is not None:  # dash reports a foreground job ended by a signal
                        self.streams.stderr.append(f"{signal.strsignal(signal.Signals[f'SIG{killed_by}'])}\n")
            await self.wait()
        finally:
            for task in self.background:
                task.cancel()
            await asyncio.gather(*self.background, return_exceptions=True)
        return status

    async def wait(self) -> None:
        await asyncio.gather(*self.background)
        self.background.clear()


async def sh_command(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """``sh -c SCRIPT``: run the script's list, background jobs concurrently."""
    if len(argv) < 3 or argv[1] != "-c":
        return CommandResult(2, "", "sh: only 'sh -c SCRIPT' is simulated\n")
    try:
        items = parse(argv[2])
    except ShellSyntaxError as exc:
        return CommandResult(2, "", f"sh: 1: Syntax error: {exc}\n")
    except Unsupported:
        return CommandResult(2, "", _UNSUPPORTED)
    if sum(len(item.commands) for item in items) > MAX_COMMANDS:
        return CommandResult(2, "", _UNSUPPORTED)
    streams = ctx.streams if ctx.streams is not None else Streams()
    status = await _Script(ctx, streams).run(items)
    return streams.result(status)
