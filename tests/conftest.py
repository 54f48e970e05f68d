"""Fixtures shared by every tier: a real etcd server and an isolated key prefix per test; and, around every test,
a check that each error the REST API or the keyhole endpoint answered is one its route lists
(:data:`runner.errors.ROUTES`), so the table cannot miss an error any test provokes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import aetcd
import pytest

from runner.errors import ANY_PATH, ROUTES
from simulator.etcd import EtcdServer

pytest_plugins = ["simulator.testing", "tests.e2e.testbed_fixtures"]


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
