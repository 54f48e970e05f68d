"""Fixtures for the unit tier: a guard that keeps it pure, an in-memory job service and an HTTP client on it.

A unit test opens no socket and starts no process (pyproject's marker: "pure logic, no sockets"); the guard
fails one that tries, naming what it did, so a test that needs either moves to ``tests/integration``. Real etcd,
the simulated cluster and the testbed are refused at collection (``tests/conftest.py``).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.unit.api_support import FakeJobService, client_for, make_app

# Unit tests still starting a shell, in files another change is rewriting (the keyhole forward types); they move
# to tests/integration with it. Nothing may be added here.
PROCESSES_PENDING_MOVE = (
    "tests/unit/test_keyhole_client.py::test_export_lines_evaluate_in_a_shell",
    "tests/unit/test_keyhole_client.py::test_the_session_secret_is_exported_after_the_ports",
    "tests/unit/test_keyhole_script.py::",
)


def _refuse(nodeid: str, what: str) -> Callable[..., Any]:
    def refused(*args: object, **kwargs: object) -> Any:
        # pytest.fail raises a BaseException: a library's ``except Exception`` cannot swallow it
        pytest.fail(f"{nodeid}: a unit test may not {what}; move it to tests/integration", pytrace=False)

    return refused


@pytest.fixture(autouse=True)
def pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket connects, binds or listens; no process starts (``subprocess``, and asyncio's, which uses it)."""
    nodeid = request.node.nodeid
    for method in ("connect", "connect_ex", "bind", "listen"):
        monkeypatch.setattr(socket.socket, method, _refuse(nodeid, f"{method} a socket"))
    if not nodeid.startswith(PROCESSES_PENDING_MOVE):
        monkeypatch.setattr(subprocess.Popen, "__init__", _refuse(nodeid, "start a process"))


@pytest.fixture
def service() -> FakeJobService:
    return FakeJobService()


@pytest.fixture
async def client(service: FakeJobService) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(service)) as c:
        yield c
