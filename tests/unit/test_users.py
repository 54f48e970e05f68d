"""The users the runner will act for: ordinary accounts only, looked up once per TTL, refusals that name the rule."""

from __future__ import annotations

import asyncio

import pytest

from runner.config import Settings, settings_from_mapping
from runner.errors import ClusterUnavailable, InvalidUser, RefusedUser, UnknownUser
from runner.slurm.cli import Account
from runner.users import ClusterUsers, account_problem, runner_accounts

pytestmark = pytest.mark.unit

ACCOUNTS = {
    a.name: a
    for a in [
        Account("root", 0, 0, "/root", "/bin/bash"),
        Account("toor", 0, 0, "/root", "/bin/sh"),
        Account("daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"),
        Account("sys999", 999, 999, "/", "/usr/sbin/nologin"),
        Account("first", 1000, 1000, "/home/first", "/bin/bash"),
        Account("alice", 2001, 2001, "/home/alice", "/bin/bash"),
        Account("bwvisu", 2100, 2100, "/home/bwvisu", "/bin/bash"),  # ordinary uid: only its role refuses it
        Account("nobody", 65534, 65534, "/nonexistent", "/usr/sbin/nologin"),
    ]
}


class Lookup:
    """``getent passwd`` as a function: answers from ``ACCOUNTS``, records names; can fail or wait."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, name: str) -> Account | None:
        self.calls.append(name)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return ACCOUNTS.get(name)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lookup() -> Lookup:
    return Lookup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(lookup: Lookup, clock: Clock) -> ClusterUsers:
    return ClusterUsers(lookup, min_uid=1000, runner_accounts={"bwvisu", "gw-admin"}, ttl=60, clock=clock)


async def test_an_ordinary_account_is_returned(users: ClusterUsers, lookup: Lookup) -> None:
    assert await users.ordinary("alice") == ACCOUNTS["alice"]
    assert await users.ordinary("first") == ACCOUNTS["first"]  # min-uid itself is ordinary
    assert lookup.calls == ["alice", "first"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("root", "uid: 'root' is the superuser (uid 0); jobs run only as ordinary users"),
        ("toor", "uid: 'toor' is the superuser (uid 0); jobs run only as ordinary users"),
        ("daemon", "uid: 'daemon' is a system account (uid 1 < min-uid 1000); jobs run only as ordinary users"),
        ("sys999", "uid: 'sys999' is a system account (uid 999 < min-uid 1000); jobs run only as ordinary users"),
        ("nobody", "uid: 'nobody' is the overflow account (uid 65534); jobs run only as ordinary users"),
    ],
)
async def test_root_system_and_overflow_accounts_are_refused_naming_the_rule(
    users: ClusterUsers, name: str, message: str
) -> None:
    with pytest.raises(RefusedUser) as refused:
        await users.ordinary(name)
    assert refused.value.public == message
    assert (refused.value.status, refused.value.code) == (422, "refused-user")
    assert isinstance(refused.value, InvalidUser)


@pytest.mark.parametrize("name", ["bwvisu", "gw-admin"])
async def test_the_runners_own_accounts_are_refused_without_asking_the_cluster(
    users: ClusterUsers, lookup: Lookup, name: str
) -> None:
    with pytest.raises(RefusedUser) as refused:
        await users.ordinary(name)
    assert refused.value.public == f"uid: {name!r} is the runner's own account; jobs run only as ordinary users"
    assert lookup.calls == []


async def test_min_uid_is_the_setting(lookup: Lookup) -> None:
    strict = ClusterUsers(lookup, min_uid=2050, runner_accounts=set())
    with pytest.raises(RefusedUser, match=r"'alice' is a system account \(uid 2001 < min-uid 2050\)"):
        await strict.ordinary("alice")
    assert await strict.ordinary("bwvisu") == ACCOUNTS["bwvisu"]  # not this runner's account here


async def test_an_unknown_user_is_refused_as_such(users: ClusterUsers) -> None:
    with pytest.raises(UnknownUser) as unknown:
        await users.ordinary("mallory")
    assert unknown.value.public == "uid: 'mallory': no such user on the cluster"
    assert (unknown.value.status, unknown.value.code) == (422, "unknown-user")
    assert isinstance(unknown.value, InvalidUser)


async def test_the_field_is_named(users: ClusterUsers) -> None:
    with pytest.raises(RefusedUser, match=r"^username: 'daemon' is a system account"):
        await users.ordinary("daemon", "username")
    with pytest.raises(InvalidUser, match=r"^username: must be a POSIX user name"):
        await users.ordinary("Alice;id", "username")


async def test_a_name_that_is_no_user_name_never_reaches_the_cluster(users: ClusterUsers, lookup: Lookup) -> None:
    with pytest.raises(InvalidUser, match=r"^uid: must be a POSIX user name"):
        await users.ordinary("$(id)")
    assert lookup.calls == []


async def test_an_account_is_looked_up_once_per_ttl(users: ClusterUsers, lookup: Lookup, clock: Clock) -> None:
    for _ in range(5):
        await users.ordinary("alice")
    clock.now = 59.9
    await users.ordinary("alice")
    assert lookup.calls == ["alice"]
    clock.now = 60.0
    await users.ordinary("alice")
    assert lookup.calls == ["alice", "alice"]


async def test_refused_accounts_are_cached_as_accounts_and_still_refused(users: ClusterUsers, lookup: Lookup) -> None:
    for _ in range(3):
        with pytest.raises(RefusedUser):
            await users.ordinary("daemon")
    assert lookup.calls == ["daemon"]


async def test_an_unknown_user_is_asked_again(users: ClusterUsers, lookup: Lookup) -> None:
    for _ in range(2):
        with pytest.raises(UnknownUser):
            await users.ordinary("mallory")
    assert lookup.calls == ["mallory", "mallory"]  # the account may be created meanwhile


async def test_a_failure_to_reach_the_cluster_is_never_cached(users: ClusterUsers, lookup: Lookup) -> None:
    lookup.fail = ClusterUnavailable(internal="all command nodes down")
    with pytest.raises(ClusterUnavailable):
        await users.ordinary("alice")
    lookup.fail = None
    assert await users.ordinary("alice") == ACCOUNTS["alice"]
    assert lookup.calls == ["alice", "alice"]


async def test_a_burst_for_one_user_shares_one_lookup(users: ClusterUsers, lookup: Lookup) -> None:
    lookup.gate = asyncio.Event()
    burst = [asyncio.create_task(users.ordinary("alice")) for _ in range(20)]
    await asyncio.sleep(0)
    lookup.gate.set()
    assert await asyncio.gather(*burst) == [ACCOUNTS["alice"]] * 20
    assert lookup.calls == ["alice"]


async def test_a_failed_shared_lookup_fails_every_waiter_and_is_not_kept(users: ClusterUsers, lookup: Lookup) -> None:
    lookup.gate = asyncio.Event()
    lookup.fail = ClusterUnavailable(internal="connection lost")
    burst = [asyncio.create_task(users.ordinary("alice")) for _ in range(5)]
    await asyncio.sleep(0)
    lookup.gate.set()
    results = await asyncio.gather(*burst, return_exceptions=True)
    assert all(isinstance(r, ClusterUnavailable) for r in results)
    lookup.fail = None
    assert await users.ordinary("alice") == ACCOUNTS["alice"]
    assert lookup.calls == ["alice", "alice"]


async def test_a_waiter_that_gives_up_does_not_cancel_the_others(users: ClusterUsers, lookup: Lookup) -> None:
    lookup.gate = asyncio.Event()
    first = asyncio.create_task(users.ordinary("alice"))
    second = asyncio.create_task(users.ordinary("alice"))
    await asyncio.sleep(0)
    first.cancel()  # e.g. the frontend hung up
    await asyncio.sleep(0)
    lookup.gate.set()
    assert await second == ACCOUNTS["alice"]
    assert first.cancelled()
    assert lookup.calls == ["alice"]


def test_runner_accounts_are_every_command_and_gateway_ssh_user() -> None:
    settings: Settings = settings_from_mapping(
        {
            "command-nodes": [{"ip": "10.0.0.1", "user": "bwvisu"}, {"ip": "10.0.0.2", "user": "slurm-runner"}],
            "gateway-nodes": [{"internal-ip": "10.0.1.1", "external-ip": "192.0.2.1", "user": "gw-admin"}],
        }
    )
    assert runner_accounts(settings) == frozenset({"bwvisu", "slurm-runner", "gw-admin"})


async def test_packages_system_accounts_above_max_uid_are_refused() -> None:
    slurm = Account("slurm", 64030, 64030, "/var/lib/slurm", "/bin/false")
    assert account_problem(slurm, 1000) == "'slurm' is a system account (uid 64030 > max-uid 59999)"
    assert account_problem(slurm, 1000, max_uid=65000) is None
    assert account_problem(Account("edge", 59999, 59999, "/home/edge", "/bin/sh"), 1000) is None
