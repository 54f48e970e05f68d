"""The users the runner will act for (``sudo -n -u <uid>``): ordinary accounts of the cluster, nothing else.

A name must first be a POSIX user name (:func:`check_user_name`, shared with the API's request schemas, so a
name is judged the same way everywhere). :class:`ClusterUsers` then refuses the runner's own SSH accounts
from the configuration alone and, after one ``getent passwd`` on a command node, root (uid 0), system
accounts (uid below ``min-uid``) and the overflow account (uid 65534). Found accounts are kept for a short
while, so a burst of submissions for one user costs one SSH call; a failure to ask is never kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable

from runner.config import Settings
from runner.errors import InvalidUser, RefusedUser, UnknownUser
from runner.slurm.cli import Account

log = logging.getLogger(__name__)

_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
USER_NAME_RULE = "must be a POSIX user name: [a-z_][a-z0-9_-]{0,31}"

DEFAULT_MAX_UID = 59999  # Debian's last ordinary uid; 60000-64999 are packages' system accounts
OVERFLOW_UID = 65534  # the kernel's overflowuid: ``nobody``, whom unmapped ids become
ACCOUNT_TTL = 60.0  # seconds a found account is reused; uids of existing accounts do not change in practice
_MAX_KEPT = 10_000  # past this many kept accounts, expired ones are dropped
_ORDINARY_ONLY = "jobs run only as ordinary users"

AccountLookup = Callable[[str], Awaitable[Account | None]]
"""``lookup(name) -> Account | None``: the passwd entry (:meth:`runner.slurm.cluster.Scheduler.user_account`)."""


def user_name_problem(name: str) -> str | None:
    """Why ``name`` is not a user name the runner passes to the cluster, or None."""
    return None if _USER_NAME.fullmatch(name) else USER_NAME_RULE


def check_user_name(name: str, field: str = "uid") -> str:
    """``name``, or InvalidUser naming the field: nothing else reaches a command node."""
    problem = user_name_problem(name)
    if problem is not None:
        raise InvalidUser(f"{field}: {problem}")
    return name


def account_problem(account: Account, min_uid: int, max_uid: int = DEFAULT_MAX_UID) -> str | None:
    """Which rule forbids acting as ``account`` (root, system account, overflow account), or None."""
    if account.uid == 0:
        return f"{account.name!r} is the superuser (uid 0)"
    if account.uid == OVERFLOW_UID:
        return f"{account.name!r} is the overflow account (uid {OVERFLOW_UID})"
    if account.uid < min_uid:
        return f"{account.name!r} is a system account (uid {account.uid} < min-uid {min_uid})"
    if account.uid > max_uid:
        # e.g. Debian's slurm (64030): packages' system accounts live above the ordinary range
        return f"{account.name!r} is a system account (uid {account.uid} > max-uid {max_uid})"
    return None


def runner_accounts(settings: Settings) -> frozenset[str]:
    """The runner's own SSH accounts: every command node's and gateway's ``user``."""
    return frozenset(n.user for n in settings.command_nodes) | frozenset(g.user for g in settings.gateway_nodes)


class ClusterUsers:
    """Decides whom the runner acts for; asks the cluster through ``lookup`` at most once per name per ``ttl``."""

    def __init__(
        self,
        lookup: AccountLookup,
        *,
        min_uid: int,
        runner_accounts: Iterable[str],
        max_uid: int = DEFAULT_MAX_UID,
        ttl: float = ACCOUNT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self.min_uid = min_uid
        self.max_uid = max_uid
        self.runner_accounts = frozenset(runner_accounts)
        self.ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[Account, float]] = {}  # name -> (account, when found)
        self._asking: dict[str, asyncio.Task[Account | None]] = {}  # lookups under way, shared by their waiters

    async def ordinary(self, name: str, field: str = "uid") -> Account:
        """``name``'s account if the runner may act for it; otherwise an InvalidUser naming ``field`` and the rule.

        RefusedUser for the runner's own accounts (no SSH call), root, system and overflow accounts;
        UnknownUser when the cluster has no such account; ClusterUnavailable when it cannot be asked.
        """
        check_user_name(name, field)
        if name in self.runner_accounts:
            raise RefusedUser(f"{field}: {name!r} is the runner's own account; {_ORDINARY_ONLY}")
        account = await self.account(name)
        if account is None:
            raise UnknownUser(f"{field}: {name!r}: no such user on the cluster")
        problem = account_problem(account, self.min_uid, self.max_uid)
        if problem is not None:
            raise RefusedUser(f"{field}: {problem}; {_ORDINARY_ONLY}")
        return account

    async def account(self, name: str) -> Account | None:
        """The cluster's entry for ``name``: kept for ``ttl`` once found; concurrent callers share one lookup."""
        kept = self._known.get(name)
        if kept is not None and self._clock() - kept[1] < self.ttl:
            return kept[0]
        task = self._asking.get(name)
        if task is None:
            task = asyncio.create_task(self._ask(name), name=f"getent-passwd-{name}")
            self._asking[name] = task
            task.add_done_callback(functools.partial(self._asked, name))
        # shield: one waiter giving up (a client hanging up) must not cancel the lookup the others wait for
        return await asyncio.shield(task)

    async def _ask(self, name: str) -> Account | None:
        account = await self._lookup(name)
        if account is None:
            log.debug("user %s: no such account on the cluster", name)
            return None
        log.debug("user %s: uid %d", name, account.uid)
        if len(self._known) >= _MAX_KEPT:
            now = self._clock()
            self._known = {n: kept for n, kept in self._known.items() if now - kept[1] < self.ttl}
        self._known[name] = (account, self._clock())
        return account

    def _asked(self, name: str, task: asyncio.Task[Account | None]) -> None:
        if self._asking.get(name) is task:
            del self._asking[name]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure whose waiters all gave up is not "never retrieved"
