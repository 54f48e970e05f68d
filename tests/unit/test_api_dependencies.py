"""Every dependency of every API route is a coroutine: FastAPI runs a plain ``def`` dependency in its thread
pool, which costs each request a thread hop per dependency (runner/api/deps.py)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from runner.api import cluster, jobs, ops, templates
from runner.api.auth import require_frontend

pytestmark = pytest.mark.unit


def _sync_dependencies(dependant: Dependant) -> list[str]:
    found: list[str] = []
    for sub in dependant.dependencies:
        call: Any = sub.call
        if not (inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)):
            found.append(getattr(call, "__qualname__", repr(call)))
        found += _sync_dependencies(sub)
    return found


def test_no_route_depends_on_a_sync_function() -> None:
    routes = [r for m in (jobs, cluster, templates, ops) for r in m.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 8
    dependants = [(r.path, r.dependant) for r in routes]
    dependants.append(("(every authenticated route)", get_dependant(path="", call=require_frontend)))
    sync = {f"{path}: {name}" for path, dependant in dependants for name in _sync_dependencies(dependant)}
    assert not sync, f"dependencies run in the thread pool: {sorted(sync)}"
