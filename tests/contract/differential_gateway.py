"""Differential harness, gateway part: the runner's iptables command lines on a real gateway and a simulated one.

The same lines run one after another (they change the tables) over SSH as bwVisu's account (``sudo -n iptables``,
``sudo -n iptables-restore --noflush``) on each gateway: the runner's exact forms (chain check and set-up pairs,
its restore text of additions and deletions, the listings it reads: ``-S``, ``-L -n --line-numbers``,
``iptables-save``), then malformed and invalid ones (unknown chain, table, target or option, bad ports and
addresses, rules absent on delete, a broken restore text), then the clean-up. A gateway may be shared: every line
works on chains of this run's own (``DIFF-<hex>``, built with the runner's builders and renamed), and a listing
of a whole table is compared on those chains' lines only (:func:`normalise_gateway`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from runner.gateway import commands
from runner.gateway.access import SUDO_IPTABLES, SUDO_IPTABLES_RESTORE
from runner.gateway.iptables import DNAT_CHAIN, SNAT_CHAIN, ForwardRule, dnat_rule_args, masquerade_rule_args
from tests.contract.differential import Difference, Outcome, Side


@dataclass(frozen=True)
class GatewayCase:
    """One gateway command line, with ``{pre}``/``{post}`` (this run's chains) and ``{job}`` placeholders."""

    command: str
    stdin: str | None = None
    whole: bool = False
    """A listing of whole tables: only this run's chains' lines are compared."""


S = " ".join(SUDO_IPTABLES)
NAT = f"{S} -t nat"
RESTORE = " ".join([*SUDO_IPTABLES_RESTORE, "--noflush"])
RULES = [ForwardRule("JOB", 52001, "10.9.8.7", 5901), ForwardRule("JOB", 52002, "10.9.8.6", 5902)]
ABSENT = ForwardRule("JOB", 52003, "10.9.8.5", 5903)


def _words(args: list[str]) -> str:
    """Rule arguments as one command line (the comment quoted as ``iptables -S`` prints it)."""
    return " ".join(f'"{a}"' if a.startswith("bwvisu:") else a for a in args)


def _restore(**edits: list[ForwardRule]) -> str:
    """The runner's restore text (:func:`commands.edit_input`) on this run's chains."""
    text = commands.edit_input(**edits)
    text = re.sub(rf"(?<= ){re.escape(SNAT_CHAIN)}(?= )", "{post}", text)
    return re.sub(rf"(?<= ){re.escape(DNAT_CHAIN)}(?= )", "{pre}", text).replace("bwvisu:JOB", "bwvisu:{job}")


def _rule(rule: ForwardRule) -> str:
    return _words(dnat_rule_args(rule)).replace("bwvisu:JOB", "bwvisu:{job}")


def _masquerade(rule: ForwardRule) -> str:
    return _words(masquerade_rule_args(rule)).replace("bwvisu:JOB", "bwvisu:{job}")


def setup_cases() -> list[GatewayCase]:
    """The runner's chain set-up (``SudoIptables.setup_steps`` on this run's chains): check, create, check."""
    cases = [GatewayCase(f"{NAT} -S {{pre}}"), GatewayCase(f"{NAT} -S {{post}}")]
    for chain, hook in (("{pre}", "PREROUTING"), ("{post}", "POSTROUTING")):
        cases += [
            GatewayCase(" ".join(commands.chain_create_argv(chain, SUDO_IPTABLES))),
            GatewayCase(" ".join(commands.jump_check_argv(hook, chain, SUDO_IPTABLES))),
            GatewayCase(" ".join(commands.jump_insert_argv(hook, chain, SUDO_IPTABLES))),
        ]
    cases += [
        GatewayCase(f"{NAT} -N {{pre}}"),  # again: it exists
        GatewayCase(f"{NAT} -C PREROUTING -j {{pre}}"),
        GatewayCase(f"{NAT} -C POSTROUTING -j {{post}}"),
        GatewayCase(f"{NAT} -S {{pre}}"),
    ]
    return cases


def listing_cases(again: bool) -> list[GatewayCase]:
    """What the runner (and an administrator) reads; ``again``: the same, spelled differently (counters, ``-v``
    and ``-c``, are left out: the per-forward counters are being added to the simulator)."""
    if again:
        return [
            GatewayCase(f"{S} -S {{pre}} -t nat"),
            GatewayCase(f"{S} --table=nat --list-rules {{post}}"),
            GatewayCase(f"{NAT} -L {{pre}} --line-numbers -n"),
            GatewayCase(f"{NAT} -nL {{post}}"),
            GatewayCase(f"{NAT} -L {{pre}}"),
            GatewayCase(f"{NAT} -S -w", whole=True),
            GatewayCase("sudo -n iptables-save --table=nat", whole=True),
            GatewayCase("sudo -n iptables-save", whole=True),
        ]
    return [
        GatewayCase(f"{NAT} -S {{pre}}"),
        GatewayCase(f"{NAT} -S {{post}}"),
        GatewayCase(f"{NAT} -L {{pre}} -n --line-numbers"),
        GatewayCase(f"{NAT} -L {{post}} -n --line-numbers"),
        GatewayCase(f"{NAT} -L {{pre}} -n"),
        GatewayCase(f"{NAT} -S", whole=True),
        GatewayCase("sudo -n iptables-save -t nat", whole=True),
    ]


def invalid_cases() -> list[GatewayCase]:
    """Malformed and invalid forms: each one Slurm-free, answered by iptables' own texts and statuses."""
    dnat = "-p tcp -m tcp --dport 52009 -j DNAT --to-destination 10.9.8.7:5909"
    return [
        GatewayCase(f"{NAT} -S NOSUCH"),
        GatewayCase(f"{NAT} -L NOSUCH -n --line-numbers"),
        GatewayCase(f"{NAT} -A NOSUCH {dnat}"),
        GatewayCase(f"{NAT} -D NOSUCH 1"),
        GatewayCase(f"{NAT} -F NOSUCH"),
        GatewayCase(f"{NAT} -X NOSUCH"),
        GatewayCase(f"{NAT} -C PREROUTING -j NOSUCH"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport 70000 -j DNAT --to-destination 10.9.8.7:5909"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport abc -j DNAT --to-destination 10.9.8.7:5909"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport 52009 -j DNAT --to-destination 10.9.8.7:70000"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport 52009 -j DNAT --to-destination 10.9.8:5909"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport 52009 -j DNAT"),
        GatewayCase(f"{NAT} -A {{pre}} --dport 52009 -j DNAT --to-destination 10.9.8.7:5909"),
        GatewayCase(f"{NAT} -A {{pre}} -p tcp -m tcp --dport 52009 -j NOSUCH"),
        GatewayCase(f"{S} -t filter -A INPUT {dnat}"),
        GatewayCase(f"{S} -t nosuch -S"),
        GatewayCase(f"{NAT} -S {{pre}} --bogus"),
        GatewayCase(f"{NAT} -A {{pre}} -D {{pre}} 1"),
        GatewayCase(f"{NAT} -A"),
        GatewayCase(f"{NAT} -N {'X' * 29}"),
        GatewayCase(f"{NAT} -D {{pre}} {_rule(ABSENT)}"),
        GatewayCase(f"{NAT} -D {{post}} {_masquerade(ABSENT)}"),
        GatewayCase(f"{NAT} -D {{pre}} 9"),
        GatewayCase(f"{NAT} -X {{pre}}"),  # still referenced and not empty
        GatewayCase(RESTORE, _restore(delete_dnat=[RULES[0], ABSENT])),  # all or nothing: nothing changes
        GatewayCase(RESTORE, "*nat\n-A {pre} -p tcp -m tcp --dport 52009 -j NOSUCH\nCOMMIT\n"),
        GatewayCase(RESTORE, "*nat\n-A {pre} -p tcp -m tcp --dport 52009 -j DNAT --to-destination 10.9.8.7:5909\n"),
        GatewayCase(RESTORE, "*nosuch\nCOMMIT\n"),
        GatewayCase(RESTORE, "garbage\n"),
        GatewayCase("iptables -t nat -S {pre}"),  # without sudo
    ]


def cleanup_cases() -> list[GatewayCase]:
    """Removing this run's chains as an administrator would: jumps, rules, chains; then they are gone."""
    return [
        GatewayCase(f"{NAT} -D PREROUTING -j {{pre}}"),
        GatewayCase(f"{NAT} -D POSTROUTING -j {{post}}"),
        GatewayCase(f"{NAT} -X {{pre}}"),  # not referenced now, but not empty
        GatewayCase(f"{NAT} -F {{pre}}"),
        GatewayCase(f"{NAT} -F {{post}}"),
        GatewayCase(f"{NAT} -X {{pre}}"),
        GatewayCase(f"{NAT} -X {{post}}"),
        GatewayCase(f"{NAT} -S {{pre}} -w"),
    ]


def gateway_vocabulary() -> list[GatewayCase]:
    """Every gateway command line in the order it runs."""
    return [
        *setup_cases(),
        GatewayCase(RESTORE, _restore(add=RULES)),
        *listing_cases(again=False),
        *invalid_cases(),
        *listing_cases(again=True),  # after the refusals: unchanged
        GatewayCase(RESTORE, _restore(delete_dnat=[RULES[0]], delete_masquerade=[RULES[0]])),
        GatewayCase(f"{NAT} -D {{pre}} {_rule(RULES[1])}"),
        GatewayCase(f"{NAT} -D {{post}} 1"),
        GatewayCase(f"{NAT} -L {{post}} -n --line-numbers"),
        GatewayCase(f"{NAT} -A {{pre}} -j ACCEPT"),
        *cleanup_cases(),
    ]


@dataclass
class GatewaySide:
    """One gateway as the harness drives it, with this run's chain names and job id."""

    side: Side
    pre: str
    post: str
    job: str

    def line(self, text: str) -> str:
        return text.replace("{pre}", self.pre).replace("{post}", self.post).replace("{job}", self.job)

    async def run(self, case: GatewayCase) -> Outcome:
        return await self.side.run(self.line(case.command), None if case.stdin is None else self.line(case.stdin))


def gateway_side(side: Side, run: str | None = None) -> GatewaySide:
    """``side`` with this run's chains and job id (``run``: a recording's; a new one by default)."""
    run = run or uuid.uuid4().hex[:6].upper()
    return GatewaySide(side, f"DIFF-{run}", f"DIFF-{run}-P", f"diff-{run.lower()}")


FRAMES = ("*", "COMMIT", "-P ", ":PREROUTING ", ":INPUT ", ":OUTPUT ", ":POSTROUTING ")
"""The lines of a whole-table listing that are not about any one chain's rules."""


def normalise_gateway(text: str, gw: GatewaySide, whole: bool) -> list[str]:
    """Lines with this run's names replaced; of a whole-table listing only the table frames, builtin chains'
    headers and policies, and the lines naming this run's chains."""
    lines = []
    for raw in text.splitlines():
        line = raw.replace(gw.post, "<post>").replace(gw.pre, "<pre>").replace(gw.job, "<job>")
        if line.startswith("#"):
            continue
        line = re.sub(r"\[\d+:\d+\]", "[<packets>:<bytes>]", line)
        if whole and not ("<pre>" in line or "<post>" in line or line.startswith(FRAMES)):
            continue
        lines.append(line)
    return lines


def compare_gateway(case: GatewayCase, real: GatewaySide, a: Outcome, sim: GatewaySide, b: Outcome) -> list[Difference]:
    diffs: list[Difference] = []
    if a.exit_status != b.exit_status:
        diffs.append(Difference(case.command, "exit status", a.exit_status, b.exit_status))
    for stream in ("stdout", "stderr"):
        x = normalise_gateway(getattr(a, stream), real, case.whole and stream == "stdout")
        y = normalise_gateway(getattr(b, stream), sim, case.whole and stream == "stdout")
        if x != y:
            first = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
            what = f"{stream} line {first + 1}"
            diffs.append(Difference(case.command, what, x[first : first + 2], y[first : first + 2]))
    return diffs


async def answers(gw: GatewaySide) -> list[Outcome]:
    """Every gateway case in order (each may depend on the last); the clean-up runs again whatever happened."""
    out: list[Outcome] = []
    try:
        for case in gateway_vocabulary():
            out.append(await gw.run(case))
    finally:
        for case in cleanup_cases():
            await gw.run(case)
    return out


async def gateway_differences(real: Side, sim: Side) -> list[Difference]:
    """The gateway vocabulary on each side (its own chains), compared line by line."""
    a, b = gateway_side(real), gateway_side(sim)
    real_out, sim_out = await answers(a), await answers(b)
    return [
        d
        for case, x, y in zip(gateway_vocabulary(), real_out, sim_out, strict=True)
        for d in compare_gateway(case, a, x, b, y)
    ]


async def record_gateway(side: Side) -> dict[str, Any]:
    """The gateway vocabulary's answers on ``side``, for ``differential.json`` (its run's names with them)."""
    gw = gateway_side(side)
    out = await answers(gw)
    return {
        "run": gw.pre.removeprefix("DIFF-"),
        "answers": [
            {"command": c.command, "stdin": c.stdin, **vars(a)} for c, a in zip(gateway_vocabulary(), out, strict=True)
        ],
    }


async def replay_differences(recording: dict[str, Any], sim: Side) -> list[Difference]:
    """``sim``'s gateway against a recording of :func:`record_gateway` (every case recorded, in order)."""
    real = gateway_side(Side("real", None), recording["run"])
    recorded = [Outcome(a["exit_status"], a["stdout"], a["stderr"]) for a in recording["answers"]]
    cases = gateway_vocabulary()
    assert [(a["command"], a["stdin"]) for a in recording["answers"]] == [(c.command, c.stdin) for c in cases], (
        "the recorded gateway cases are not the vocabulary's: regenerate (python -m containers.capture_fixtures)"
    )
    mine = gateway_side(sim)
    out = await answers(mine)
    return [d for c, x, y in zip(cases, recorded, out, strict=True) for d in compare_gateway(c, real, x, mine, y)]


def gateway_command_lines() -> set[str]:
    return {c.command + ("" if c.stdin is None else f" <<< {c.stdin!r}") for c in gateway_vocabulary()}
