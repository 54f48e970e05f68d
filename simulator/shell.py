"""``sh -c SCRIPT`` for the small scripts the runner sends: simple commands separated by ``;``, run in order.

Simulated nodes run no real shell (:mod:`simulator.dispatch`), but a runner may batch several commands into
one SSH call, e.g. one ``nc -z`` per compute host in a single readiness probe. This handler runs each simple
command of the script through the node's own handlers, as the effective user, and concatenates their output;
the exit status is that of the last command, as in ``sh``. Anything beyond that subset (pipes, redirections,
``&&``, variables, quoting tricks the runner never sends) is refused with exit 2, never guessed at.
"""

from __future__ import annotations

import shlex

from simulator.commands import CommandContext, CommandResult, Handler

MAX_COMMANDS = 1000
_UNSUPPORTED = "sh: only lists of simple commands separated by ';' are simulated\n"


def split_script(script: str) -> list[list[str]] | None:
    """The script's simple commands as argument lists; ``None`` when it uses more than ``;`` lists."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word == ";":
            commands.append([])
        elif (word and set(word) <= set("();<>|&")) or "$" in word or "`" in word:
            return None
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _handlers(ctx: CommandContext) -> dict[str, Handler]:
    dispatcher = getattr(ctx.node, "dispatcher", None)
    handlers = getattr(dispatcher, "handlers", None)
    return handlers if isinstance(handlers, dict) else {}


async def sh_command(ctx: CommandContext, argv: list[str], _stdin: bytes) -> CommandResult:
    """``sh -c SCRIPT``: run the script's commands one after another."""
    if len(argv) < 3 or argv[1] != "-c":
        return CommandResult(2, "", "sh: only 'sh -c SCRIPT' is simulated\n")
    try:
        commands = split_script(argv[2])
    except ValueError:
        return CommandResult(2, "", "sh: 1: Syntax error: Unterminated quoted string\n")
    if commands is None or len(commands) > MAX_COMMANDS:
        return CommandResult(2, "", _UNSUPPORTED)
    handlers = _handlers(ctx)
    out: list[str] = []
    err: list[str] = []
    status = 0
    for words in commands:
        handler = handlers.get(words[0])
        if handler is None or words[0] == "sh":
            err.append(f"sh: 1: {words[0]}: not found\n")
            status = 127
            continue
        result = await handler(ctx, words, b"")
        out.append(result.stdout)
        err.append(result.stderr)
        status = result.exit_status
    return CommandResult(status, "".join(out), "".join(err))
