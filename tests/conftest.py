"""Fixtures shared by every tier (a real etcd server and an isolated key prefix per test), and the tier rule.

Each test's folder names its tier and the test must carry that tier's marker (the contract folder's testbed side,
and its differential tests, are also ``e2e``): ``-m unit`` then selects exactly ``tests/unit``. A unit test may not
ask for etcd, the simulated cluster or the testbed; at run time ``tests/unit/conftest.py`` refuses sockets and
processes. Around every test, each error the REST API or the keyhole endpoint answered must be one its route lists
(:data:`runner.errors.ROUTES`), so the table cannot miss an error any test provokes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aetcd
import pytest

from runner.errors import ANY_PATH, ROUTES
from simulator.etcd import EtcdServer

pytest_plugins = ["simulator.testing", "tests.e2e.testbed_fixtures"]

TIERS = {"unit": {"unit"}, "integration": {"integration"}, "contract": {"contract", "e2e"}, "e2e": {"e2e"}}
NOT_FOR_UNIT = {"etcd_server", "etcd_client", "sim_cluster", "testbed", "docker_engine"}


def tier_problems(items: list[pytest.Item]) -> list[str]:
    """Tests whose markers or fixtures do not match their tier's folder."""
    problems: list[str] = []
    here = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(here).parts if item.path.is_relative_to(here) else ()
        if len(parts) < 2 or parts[0] not in TIERS:
            continue
        folder = parts[0]
        marks = {m.name for m in item.iter_markers()} & set(TIERS)
        if not marks & TIERS[folder]:
            problems.append(f"{item.nodeid}: in tests/{folder} but not marked {' or '.join(sorted(TIERS[folder]))}")
        elif folder != "unit" and "unit" in marks:
            problems.append(f"{item.nodeid}: marked unit outside tests/unit")
        elif folder == "unit" and marks != {"unit"}:
            problems.append(f"{item.nodeid}: a unit test marked {', '.join(sorted(marks - {'unit'}))}")
        used = NOT_FOR_UNIT & set(getattr(item, "fixturenames", ()))
        if folder == "unit" and used:
            problems.append(
                f"{item.nodeid}: a unit test using {', '.join(sorted(used))}: it belongs in tests/integration"
            )
    return problems


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError("tests outside their tier:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd process for the whole session; tests isolate themselves with :func:`etcd_prefix`."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses."""
    return f"/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def etcd_client(etcd_server: EtcdServer) -> AsyncIterator[aetcd.Client]:
    client = aetcd.Client(host=etcd_server.host, port=etcd_server.port)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


ANSWERING_LOGGERS = ("runner.api.errors", "runner.keyhole.http")


class _Answers(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        route, code = getattr(record, "route", None), getattr(record, "code", None)
        if isinstance(route, str) and isinstance(code, str):
            self.seen.append((route, code))


def undeclared(seen: list[tuple[str, str]]) -> list[str]:
    """The ``(route, code)`` answers that :data:`runner.errors.ROUTES` does not list for their route."""
    general = {kind.code for kind in ANY_PATH}
    return sorted(
        {
            f"{route} -> {code}"
            for route, code in seen
            if code not in general and code not in {kind.code for kind in ROUTES.get(route, ())}
        }
    )


@pytest.fixture(autouse=True)
def answers_are_listed() -> Iterator[None]:
    handler = _Answers()
    loggers = [logging.getLogger(name) for name in ANSWERING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if not logger.isEnabledFor(logging.INFO):
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    missing = undeclared(handler.seen)
    assert not missing, f"answers not listed in runner.errors.ROUTES: {missing}"
