"""One in-memory :class:`runner.ssh.CommandRunner` for tests: scripted answers, every call recorded, faults on cue.

:class:`ScriptedRunner` stands for one node. What it answers, first match wins:

1. a fault set for this call number (:meth:`ScriptedRunner.fail_at`), or every call while :attr:`down` is set
   (the node cannot be reached: :class:`~runner.ssh.NodeUnreachable`);
2. the next queued reply (``replies=``, :meth:`ScriptedRunner.queue`), whatever the command, in order;
3. the first rule (:meth:`ScriptedRunner.on`) whose pattern matches the argv: a word (the command's name,
   found anywhere in the argv, so ``"sbatch"`` matches ``sudo -n -u alice sbatch ...``), a list (an argv prefix)
   or a predicate; a rule may be limited to its first ``times`` matches;
4. the ``inner`` runner, if one is wrapped (a real node, with faults injected in front of it);
5. exit status 0 with no output.

A reply is a :class:`~runner.ssh.CommandOutput` (taken as given), :func:`answer` (filled in with this node's
name and the argv), an exception instance (raised), :func:`unreachable` / :func:`indeterminate` (the transport
errors, built for the call), or a function of the :class:`Call` returning any of those, maybe awaitable;
a function returning None passes the call on to the next rule (a hook that acts, say takes the node down, before
the command goes on). The habit is jupyterhub's and asyncssh's:
pick behaviour by command name, and pin the transcript (:attr:`ScriptedRunner.calls`) exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from runner.errors import CommandIndeterminate, NodeUnreachable, TransportError
from runner.ssh import CommandOutput, CommandRunner

__all__ = ["Answer", "Call", "ScriptedRunner", "answer", "indeterminate", "unreachable"]


@dataclass(frozen=True)
class Call:
    """One command the runner sent: its argv, its stdin and the timeout it asked for."""

    argv: list[str]
    stdin: str | None
    timeout: float | None


@dataclass(frozen=True)
class Answer:
    """A command's answer without a node or argv: :class:`ScriptedRunner` fills them in."""

    stdout: str = ""
    status: int = 0
    stderr: str = ""


def answer(stdout: str = "", status: int = 0, stderr: str = "") -> Answer:
    return Answer(stdout, status, stderr)


@dataclass(frozen=True)
class _Transport:
    kind: type[TransportError]
    reason: str


def unreachable(reason: str = "connection refused") -> _Transport:
    """:class:`~runner.ssh.NodeUnreachable` for the call it answers: the command never ran."""
    return _Transport(NodeUnreachable, reason)


def indeterminate(reason: str = "connection lost") -> _Transport:
    """:class:`~runner.ssh.CommandIndeterminate` for the call it answers: the command may have run."""
    return _Transport(CommandIndeterminate, reason)


Reply = CommandOutput | Answer | Exception | _Transport
Responder = Callable[[Call], "Reply | Awaitable[Reply | None] | None"]
Pattern = str | Sequence[str] | Callable[[list[str]], bool]


def _matches(pattern: Pattern, argv: list[str]) -> bool:
    if isinstance(pattern, str):
        return pattern in argv
    if callable(pattern):
        return pattern(argv)
    return argv[: len(pattern)] == list(pattern)


async def _resolve(reply: Reply | Responder, call: Call) -> Reply | None:
    if not callable(reply):
        return reply
    made = reply(call)
    if inspect.isawaitable(made):
        return await made
    return made


@dataclass
class _Rule:
    pattern: Pattern
    reply: Reply | Responder
    times: int | None


@dataclass
class ScriptedRunner:
    """A node whose answers are scripted (see the module's docstring); :attr:`calls` is its transcript."""

    name: str = "scripted"
    replies: list[Reply] = field(default_factory=list)
    inner: CommandRunner | None = None
    down: bool = False
    """While set, every command fails as :func:`unreachable` (counted and recorded, as the runner sent it)."""
    log: list[Call] = field(default_factory=list)
    closed: bool = False
    _rules: list[_Rule] = field(default_factory=list)
    _faults: dict[int, Reply] = field(default_factory=dict)

    @property
    def calls(self) -> list[list[str]]:
        """Every argv sent, in order."""
        return [c.argv for c in self.log]

    def queue(self, *replies: Reply) -> ScriptedRunner:
        """Answer the next commands with ``replies``, in order, whatever they are."""
        self.replies.extend(replies)
        return self

    def on(self, pattern: Pattern, reply: Reply | Responder, *, times: int | None = None) -> ScriptedRunner:
        """Answer commands matching ``pattern`` with ``reply`` (only the first ``times`` of them, if given)."""
        self._rules.append(_Rule(pattern, reply, times))
        return self

    def fail_at(self, call: int, fault: Reply | None = None) -> ScriptedRunner:
        """Answer the ``call``-th command (1-based, counting every command) with ``fault`` (default: lost)."""
        self._faults[call] = fault if fault is not None else indeterminate()
        return self

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        call = Call(list(argv), stdin, timeout)
        self.log.append(call)
        reply = await self._reply(call)
        if reply is None:
            if self.inner is not None:
                return await self.inner.run(argv, stdin, timeout)
            reply = Answer()
        return self._deliver(reply, call)

    async def _reply(self, call: Call) -> Reply | None:
        fault = self._faults.pop(len(self.log), None)
        if fault is not None:
            return fault
        if self.down:
            return unreachable()
        if self.replies:
            return self.replies.pop(0)
        for rule in self._rules:
            if rule.times == 0 or not _matches(rule.pattern, call.argv):
                continue
            if rule.times is not None:
                rule.times -= 1
            reply = await _resolve(rule.reply, call)
            if reply is not None:
                return reply
            # the responder passed (it only watched, or acted before the command): on to the next rule
        return None

    def _deliver(self, reply: Reply, call: Call) -> CommandOutput:
        if isinstance(reply, _Transport):
            raise reply.kind(self.name, call.argv, reply.reason)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, Answer):
            return CommandOutput(self.name, tuple(call.argv), reply.status, reply.stdout, reply.stderr)
        return reply

    async def close(self) -> None:
        self.closed = True
        if self.inner is not None:
            await self.inner.close()
