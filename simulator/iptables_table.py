"""The rule tables of one simulated gateway: chains as indexed linked lists, with an undo journal.

Each chain keeps its rules in a doubly linked list whose nodes carry sortable order keys, plus a dict from
rule to its nodes, so append, insert at the head, delete by spec and check are O(1) regardless of how many
rules exist; only positional operations (``-I CHAIN N``, ``-D CHAIN N``) walk the list. Every mutation is
recorded in :attr:`Netfilter.changes` (for the forwarders) and, inside :meth:`Netfilter.transaction`, in an
undo journal, so ``iptables-restore`` is atomic without copying the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from simulator.iptables_rules import (
    BUILTIN_TARGETS,
    IptablesError,
    Rule,
    busy,
    missing_target_chain,
    no_such_chain,
    parameter_problem,
)

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}
_GAP = 1 << 16


class _Node:
    """One rule in a chain, with its packet and byte counters (each copy of a rule counts for itself)."""

    __slots__ = ("bytes", "key", "next", "packets", "prev", "rule")

    def __init__(self, rule: Rule, key: int) -> None:
        self.rule = rule
        self.key = key
        self.packets = 0
        self.bytes = 0
        self.prev: _Node | None = None
        self.next: _Node | None = None


class Chain:
    """An ordered, indexed rule list."""

    def __init__(self, name: str, builtin: bool) -> None:
        self.name = name
        self.builtin = builtin
        self.policy = "ACCEPT" if builtin else "-"
        self.head: _Node | None = None
        self.tail: _Node | None = None
        self.size = 0
        self.index: dict[Rule, list[_Node]] = {}

    def __iter__(self) -> Iterator[Rule]:
        node = self.head
        while node is not None:
            yield node.rule
            node = node.next

    def __len__(self) -> int:
        return self.size

    def nodes(self) -> Iterator[_Node]:
        """The rules in order, with their counters."""
        node = self.head
        while node is not None:
            yield node
            node = node.next

    def order_key(self, rule: Rule) -> int | None:
        """The order key of the first copy of ``rule`` (smaller keys come first), ``None`` if absent."""
        nodes = self.index.get(rule)
        return min(n.key for n in nodes) if nodes else None

    def first(self, rule: Rule) -> _Node | None:
        nodes = self.index.get(rule)
        return min(nodes, key=lambda n: n.key) if nodes else None

    def nth(self, number: int) -> _Node | None:
        """The rule at 1-based position ``number`` (a walk: positional commands are rare)."""
        node = self.head
        for _ in range(number - 1):
            if node is None:
                return None
            node = node.next
        return node

    def link_after(self, prev: _Node | None, node: _Node) -> None:
        nxt = self.head if prev is None else prev.next
        if prev is None and nxt is None:
            key = 0
        elif prev is None:
            key = nxt.key - _GAP if nxt is not None else 0
        elif nxt is None:
            key = prev.key + _GAP
        else:
            if nxt.key - prev.key < 2:
                self._relabel()
            key = (prev.key + nxt.key) // 2
        node.key = key
        node.prev, node.next = prev, nxt
        if prev is None:
            self.head = node
        else:
            prev.next = node
        if nxt is None:
            self.tail = node
        else:
            nxt.prev = node
        self.size += 1
        self.index.setdefault(node.rule, []).append(node)

    def unlink(self, node: _Node) -> None:
        if node.prev is None:
            self.head = node.next
        else:
            node.prev.next = node.next
        if node.next is None:
            self.tail = node.prev
        else:
            node.next.prev = node.prev
        self.size -= 1
        nodes = self.index[node.rule]
        nodes.remove(node)
        if not nodes:
            del self.index[node.rule]

    def _relabel(self) -> None:
        node, key = self.head, 0
        while node is not None:
            node.key, key = key, key + _GAP
            node = node.next


class Netfilter:
    """The ``filter`` and ``nat`` tables of one node."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Chain]] = {
            name: {c: Chain(c, True) for c in chains} for name, chains in BUILTIN_CHAINS.items()
        }
        self.refs: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in BUILTIN_CHAINS}
        self.changes: list[tuple[str, str, Rule]] = []
        self.written: set[str] = set()
        """Tables a command has changed: iptables-nft creates a table in the kernel on its first write only."""
        self._journal: list[Callable[[], None]] | None = None

    def chain(self, table: str, name: str) -> Chain:
        try:
            return self.tables[table][name]
        except KeyError:
            raise no_such_chain() from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All mutations inside apply together or, if the block raises, not at all."""
        journal: list[Callable[[], None]] = []
        self._journal = journal
        try:
            yield
        except BaseException:
            self._journal = None
            for undo in reversed(journal):
                undo()
            raise
        finally:
            self._journal = None

    def _record(self, undo: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(undo)

    # -- rules -------------------------------------------------------------------------------------

    def _check_target(self, table: str, chain: str, rule: Rule) -> None:
        target = rule.target
        if target is None or target in BUILTIN_TARGETS:
            return
        self.require_target(table, rule)
        if self._reaches(table, target, chain):
            raise IptablesError("iptables: Too many levels of symbolic links.", 1)

    def require_target(self, table: str, rule: Rule) -> None:
        """The rule's target is a known extension or an existing user chain."""
        target = rule.target
        if target is None or target in BUILTIN_TARGETS:
            return
        if target not in self.tables[table]:
            raise missing_target_chain(target)
        if self.tables[table][target].builtin:
            raise parameter_problem(f"Couldn't load target `{target}':No such file or directory")

    def _reaches(self, table: str, start: str, goal: str) -> bool:
        seen, stack = {start}, [start]
        edges = self.refs[table]
        for _ in range(len(self.tables[table]) + 1):
            if not stack:
                return False
            here = stack.pop()
            if here == goal:
                return True
            for src, dst in edges:
                if src == here and dst not in seen:
                    seen.add(dst)
                    stack.append(dst)
        return goal in seen

    def _link(self, table: str, chain: Chain, prev: _Node | None, node: _Node) -> None:
        rule = node.rule
        self.written.add(table)
        chain.link_after(prev, node)
        if rule.target in self.tables[table] and rule.target is not None:
            self.refs[table][(chain.name, rule.target)] += 1
        self.changes.append((table, chain.name, rule))
        self._record(lambda: self._unlink(table, chain, node))

    def _unlink(self, table: str, chain: Chain, node: _Node) -> None:
        prev = node.prev
        chain.unlink(node)
        if node.rule.target is not None and (chain.name, node.rule.target) in self.refs[table]:
            edge = (chain.name, node.rule.target)
            self.refs[table][edge] -= 1
            if self.refs[table][edge] <= 0:
                del self.refs[table][edge]
        self.changes.append((table, chain.name, node.rule))
        self._record(lambda: self._link(table, chain, prev, node))

    def append(self, table: str, chain_name: str, rule: Rule) -> None:
        chain = self.chain(table, chain_name)
        self._check_target(table, chain_name, rule)
        self._link(table, chain, chain.tail, _Node(rule, 0))

    def insert(self, table: str, chain_name: str, rule: Rule, number: int = 1) -> None:
        chain = self.chain(table, chain_name)
        self._check_target(table, chain_name, rule)
        if number > chain.size + 1:
            raise IptablesError("iptables: Index of insertion too big.", 1)
        self._link(table, chain, None if number == 1 else chain.nth(number - 1), _Node(rule, 0))

    def delete(self, table: str, chain_name: str, rule: Rule | None, number: int | None = None) -> None:
        chain = self.chain(table, chain_name)
        node = chain.nth(number) if number is not None else chain.first(rule) if rule else None
        if node is None:
            if number is not None:
                raise IptablesError("iptables: Index of deletion too big.", 1)
            raise IptablesError("iptables: Bad rule (does a matching rule exist in that chain?).", 1)
        self._unlink(table, chain, node)

    def check(self, table: str, chain_name: str, rule: Rule) -> bool:
        chain = self.chain(table, chain_name)
        self.require_target(table, rule)
        return rule in chain.index

    def flush(self, table: str, chain_name: str | None = None) -> None:
        chains = [self.chain(table, chain_name)] if chain_name else list(self.tables[table].values())
        for chain in chains:
            while chain.tail is not None:
                self._unlink(table, chain, chain.tail)

    # -- chains ------------------------------------------------------------------------------------

    def new_chain(self, table: str, name: str) -> None:
        chains = self.tables[table]
        if name in chains:
            raise IptablesError("iptables: Chain already exists.", 1)
        if name in BUILTIN_TARGETS:
            raise parameter_problem("chain name may not clash with target name")
        chains[name] = Chain(name, False)
        self.written.add(table)

        def undo() -> None:
            chains.pop(name, None)

        self._record(undo)

    def delete_chain(self, table: str, name: str | None = None) -> None:
        chains = self.tables[table]
        if name is None:
            for user in sorted(c.name for c in chains.values() if not c.builtin):
                self.delete_chain(table, user)
            return
        chain = self.chain(table, name)
        if chain.builtin:
            raise IptablesError("iptables: Invalid argument. Run `dmesg' for more information.", 1)
        if chain.size or any(dst == name for (_, dst) in self.refs[table]):  # nf_tables: either is EBUSY
            raise busy("CHAIN_DEL", f"Device or resource busy): chain {name}")
        del chains[name]
        self._record(lambda: chains.__setitem__(name, chain))

    def set_policy(self, table: str, name: str, policy: str) -> None:
        chain = self.chain(table, name)
        if not chain.builtin:
            raise IptablesError("iptables: Bad built-in chain name.", 1)
        if policy not in ("ACCEPT", "DROP"):
            raise IptablesError("iptables: Bad policy name. Run `dmesg' for more information.", 1)
        old, chain.policy = chain.policy, policy
        self.written.add(table)
        self._record(lambda: setattr(chain, "policy", old))

    def ordered_chains(self, table: str) -> list[Chain]:
        """Built-in chains in kernel order, then user chains sorted by name, as iptables lists them."""
        chains = self.tables[table]
        builtins = [chains[name] for name in BUILTIN_CHAINS[table]]
        return builtins + sorted((c for c in chains.values() if not c.builtin), key=lambda c: c.name)

    def references(self, table: str, name: str) -> int:
        return sum(n for (_, dst), n in self.refs[table].items() if dst == name)
