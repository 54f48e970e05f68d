"""Process-free job kinds for scale tests: a script line ``#SIM-BEHAVIOUR NAME key=value ...`` selects one.

Built in:

- ``listen port=P [after=D] [exit_after=E] [exit_code=C]``: after D seconds listen on TCP port P at the
  node's address (accepting and closing connections) until the job ends, or for E seconds.
- ``sleep [seconds=S] [exit_code=C]``: run S seconds (forever without S), then exit with C.
- ``exit [code=C]``: end at once with exit code C.

A behaviour is an async function returning the batch step's exit code; being cancelled means the job
was killed. :func:`register_behaviour` adds more.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from simulator.jobs import Job

MARKER = "#SIM-BEHAVIOUR"


@dataclass
class BehaviourContext:
    job: Job
    address: str
    env: dict[str, str]
    params: dict[str, str]

    def number(self, key: str, default: float | None = None) -> float | None:
        value = self.params.get(key)
        return default if value is None else float(value)


Behaviour = Callable[[BehaviourContext], Coroutine[Any, Any, int]]

_REGISTRY: dict[str, Behaviour] = {}


def register_behaviour(name: str, behaviour: Behaviour) -> None:
    """Make ``#SIM-BEHAVIOUR name ...`` run ``behaviour``."""
    _REGISTRY[name] = behaviour


def find_behaviour(script: str) -> tuple[Behaviour, dict[str, str]] | None:
    """The behaviour a script selects and its parameters, or None for a script that runs for real."""
    if MARKER not in script:
        return None
    for line in script.splitlines():
        if line.startswith(MARKER):
            words = shlex.split(line[len(MARKER) :])
            if not words or words[0] not in _REGISTRY:
                return _REGISTRY["exit"], {"code": "1"}
            params = dict(word.partition("=")[::2] for word in words[1:])
            return _REGISTRY[words[0]], params
    return None


async def _close_connection(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def listen(ctx: BehaviourContext) -> int:
    await asyncio.sleep(ctx.number("after", 0.0) or 0.0)
    port = int(ctx.params.get("port", "0"))
    server = await asyncio.start_server(_close_connection, ctx.address, port, reuse_address=True)
    try:
        exit_after = ctx.number("exit_after")
        if exit_after is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(exit_after)
    finally:
        server.close()
        await server.wait_closed()
    return int(ctx.params.get("exit_code", "0"))


async def sleep(ctx: BehaviourContext) -> int:
    seconds = ctx.number("seconds")
    if seconds is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(seconds)
    return int(ctx.params.get("exit_code", "0"))


async def exit_now(ctx: BehaviourContext) -> int:
    return int(ctx.params.get("code", "0"))


register_behaviour("listen", listen)
register_behaviour("sleep", sleep)
register_behaviour("exit", exit_now)
