"""iptables command builders and ``iptables -S`` parsers for the runner's forwards on a gateway.

All rules live in the nat table, in two chains of the runner's own:

* :data:`DNAT_CHAIN` (``BWVISU``), jumped to from ``PREROUTING``: one ``DNAT`` rule per forward,
  gateway:external-port -> compute:internal-port. Only ``PREROUTING`` is hooked: users' traffic
  arrives from outside; the runner's own probes go from the gateway straight to the compute node's
  internal port, so locally generated traffic (``OUTPUT``) needs no rule.
* :data:`SNAT_CHAIN` (``BWVISU-POST``), jumped to from ``POSTROUTING``: one ``MASQUERADE`` rule per
  forward, so the compute node answers the gateway (and conntrack un-NATs the reply) instead of
  replying to the user directly.

With idle sessions on (setting ``idle-timeout-minutes``), a third chain of the runner's own counts traffic:

* :data:`ACCOUNTING_CHAIN` (``BWVISU-ACCT``) in the filter table, jumped to from ``FORWARD``: one rule per forward
  with no target, matching what DNAT made of the user's packets (``-d compute/32 --dport internal-port``), so it
  only counts and never decides. The nat rules cannot count traffic: the nat table sees the first packet of a
  connection only. The runner's own probes go out through ``OUTPUT`` and are not counted.
  :func:`counters_command` lists the chain with its counters (``-S -v``: ``... -c PACKETS BYTES``) in one call.

Every rule carries ``-m comment --comment "bwvisu:<runner job id>"``, so rules can be listed per job
and strays found. Builders return argument lists, spelled exactly as ``iptables -S`` prints them (nft
variant, 1.8.x), so a listed line can be fed back as a ``-D``;
:func:`runner.gateway.commands.edit_input` writes them into one ``iptables-restore --noflush`` text that
adds and deletes many rules in a single call, which stays cheap with thousands of rules present.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from runner.errors import CounterParseError
from runner.records import JOB_ID

DNAT_CHAIN = "BWVISU"
SNAT_CHAIN = "BWVISU-POST"
ACCOUNTING_CHAIN = "BWVISU-ACCT"
COMMENT_PREFIX = "bwvisu:"
IPTABLES: tuple[str, ...] = ("iptables",)
IPTABLES_RESTORE: tuple[str, ...] = ("iptables-restore",)


@dataclass(frozen=True, order=True)
class ForwardRule:
    """One iptables rule pair: the gateway's ``external_port`` to ``internal_ip:internal_port``, owned by a job.

    A rule, not a forward record (:class:`runner.records.Forward`): it is what a gateway's chains hold, written
    from a record and parsed back from ``iptables -S``, so it has only what the rule text carries (the job id in
    its comment, no gateway addresses) and is compared rule by rule when reconciling.
    """

    job_id: str
    external_port: int
    internal_ip: str
    internal_port: int

    def __post_init__(self) -> None:
        if JOB_ID.fullmatch(self.job_id) is None:
            raise ValueError(f"job id {self.job_id!r} cannot go into an iptables comment")
        for port in (self.external_port, self.internal_port):
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} out of range")
        ipaddress.IPv4Address(self.internal_ip)  # raises ValueError; iptables is IPv4 only

    @property
    def comment(self) -> str:
        return COMMENT_PREFIX + self.job_id


def dnat_rule_args(rule: ForwardRule) -> list[str]:
    """The DNAT rule's match and target, as ``iptables -S`` orders them."""
    return [
        "-p", "tcp", "-m", "tcp", "--dport", str(rule.external_port),
        "-m", "comment", "--comment", rule.comment,
        "-j", "DNAT", "--to-destination", f"{rule.internal_ip}:{rule.internal_port}",
    ]  # fmt: skip


def masquerade_rule_args(rule: ForwardRule) -> list[str]:
    """The MASQUERADE rule for the forward's reply path, as ``iptables -S`` orders it."""
    return [
        "-d", f"{rule.internal_ip}/32", "-p", "tcp", "-m", "tcp", "--dport", str(rule.internal_port),
        "-m", "comment", "--comment", rule.comment, "-j", "MASQUERADE",
    ]  # fmt: skip


def accounting_rule_args(rule: ForwardRule) -> list[str]:
    """The counting rule for the forward's user traffic (after DNAT), as ``iptables -S`` orders it; no target."""
    return [
        "-d", f"{rule.internal_ip}/32", "-p", "tcp", "-m", "tcp", "--dport", str(rule.internal_port),
        "-m", "comment", "--comment", rule.comment,
    ]  # fmt: skip


def list_command(chain: str, *, iptables: Sequence[str] = IPTABLES) -> list[str]:
    """``iptables -t nat -S <chain>``; parse its output with :func:`parse_forward_rules`."""
    return [*iptables, "-t", "nat", "-S", chain]


def counters_command(chain: str = ACCOUNTING_CHAIN, *, iptables: Sequence[str] = IPTABLES) -> list[str]:
    """``iptables -w -t filter -S <chain> -v``: the chain's rules, each ending in ``-c PACKETS BYTES``."""
    return [*iptables, "-w", "-t", "filter", "-S", chain, "-v"]


def restore_command(*, iptables_restore: Sequence[str] = IPTABLES_RESTORE) -> list[str]:
    """``iptables-restore --noflush``; feed it :func:`runner.gateway.commands.edit_input` on stdin."""
    return [*iptables_restore, "--noflush"]


def _options(line: str) -> tuple[str, dict[str, str]] | None:
    """An ``-A CHAIN ...`` line's chain and its ``--option value`` pairs; ``None`` for other lines."""
    words = shlex.split(line)
    if words and re.fullmatch(r"\[\d+:\d+\]", words[0]):  # counters from ``-S -c`` / ``iptables-save -c``
        words = words[1:]
    if len(words) < 2 or words[0] != "-A":
        return None
    options: dict[str, str] = {}
    key: str | None = None
    for word in words[2:]:
        if word.startswith("-") and not re.fullmatch(r"-?\d+", word):
            key = word
            options.setdefault(key, "")
        elif key is not None and word != "!":
            options[key] = f"{options[key]} {word}".strip() if options[key] else word
    return words[1], options


def _job_of(options: dict[str, str]) -> str | None:
    comment = options.get("--comment", "")
    return comment.removeprefix(COMMENT_PREFIX) if comment.startswith(COMMENT_PREFIX) else None


def _tagged(output: str, chain: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``(job id, options)`` of each rule of ``chain`` in ``-S`` output that carries the runner's job tag."""
    for line in output.splitlines():
        parsed = _options(line)
        if parsed is None or parsed[0] != chain:
            continue
        job_id = _job_of(parsed[1])
        if job_id is not None:
            yield job_id, parsed[1]


def parse_forward_rules(output: str, *, chain: str = DNAT_CHAIN) -> list[ForwardRule]:
    """The runner's DNAT rules in ``iptables -t nat -S <chain>`` (or ``iptables-save``) output.

    Rules of other chains, untagged rules and rules that do not parse as a runner forward are skipped:
    the reconciler finds those as rules it does not expect.
    """
    rules = []
    for job_id, options in _tagged(output, chain):
        ip, _, port = options.get("--to-destination", "").rpartition(":")
        if options.get("-j") != "DNAT" or not port.isdigit() or not options.get("--dport", "").isdigit():
            continue
        try:
            rules.append(ForwardRule(job_id, int(options["--dport"]), ip, int(port)))
        except ValueError:
            continue
    return rules


def parse_masquerade_rules(output: str, *, chain: str = SNAT_CHAIN) -> list[tuple[str, str, int]]:
    """``(job id, internal ip, internal port)`` of the runner's MASQUERADE rules in ``-S`` output."""
    rules = []
    for job_id, options in _tagged(output, chain):
        dest = options.get("-d", "").removesuffix("/32")
        if options.get("-j") != "MASQUERADE" or not options.get("--dport", "").isdigit():
            continue
        rules.append((job_id, dest, int(options["--dport"])))
    return rules


@dataclass(frozen=True)
class Counted:
    """One accounting rule as listed, with its counters (packets and bytes since the rule was written)."""

    rule: ForwardRule
    packets: int
    bytes: int


def parse_counters(output: str, *, chain: str = ACCOUNTING_CHAIN) -> list[Counted]:
    """The runner's accounting rules and their counters in ``iptables -t filter -S <chain> -v`` output.

    ``-N``/``-P`` lines and untagged rules (an administrator's own) are skipped. A tagged rule of the chain
    without two non-negative integer counters, or not of the accounting form, raises
    :class:`CounterParseError`: counters that cannot be read must not look like silence.
    """
    found = []
    for line in output.splitlines():
        try:
            parsed = _options(line)
        except ValueError as exc:  # unbalanced quotes
            raise CounterParseError(f"unreadable line {line[:200]!r}: {exc}") from None
        if parsed is None or parsed[0] != chain:
            continue
        options = parsed[1]
        job_id = _job_of(options)
        if job_id is None:
            continue
        counters = options.get("-c", "").split()
        dest, port = options.get("-d", ""), options.get("--dport", "")
        if len(counters) != 2 or not all(c.isdigit() for c in counters) or "-j" in options:
            raise CounterParseError(f"no counters in {line[:200]!r}")
        if not dest.endswith("/32") or not port.isdigit():
            raise CounterParseError(f"not an accounting rule: {line[:200]!r}")
        try:
            rule = ForwardRule(job_id, 1, dest.removesuffix("/32"), int(port))
        except ValueError as exc:
            raise CounterParseError(f"not an accounting rule: {line[:200]!r}: {exc}") from None
        found.append(Counted(rule, int(counters[0]), int(counters[1])))
    return found
