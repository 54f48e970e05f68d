"""The one table of what each route can answer (:data:`runner.errors.ROUTES`): it names every route of the REST
API and of the keyhole endpoint, the OpenAPI document says exactly what it says, and ``docs/errors.md`` is it.

That no route answers an error its entry leaves out is checked around every test (``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from runner.api import cluster, create_app, jobs, ops
from runner.api import templates as templates_routes
from runner.configdoc import ERRORS_FILE, REGENERATE
from runner.errors import ANY_PATH, ROUTES, NoSuchJob, Unauthorized, route_table
from runner.keyhole.http import ROUTE, create_keyhole_app
from runner.templates import TemplateStore
from tests.conftest import undeclared
from tests.unit.api_support import EXAMPLE_TEMPLATES, FakeJobService, client_for, make_app, make_settings

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def document() -> dict[str, Any]:
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _keys(routes: list[Any]) -> set[str]:
    return {
        f"{method} {route.path}"
        for route in routes
        if isinstance(route, (APIRoute, Route))
        for method in sorted(route.methods or ())
        if method != "HEAD"
    }


def test_the_table_names_every_route_and_nothing_else() -> None:
    app = create_app(
        cast(Any, FakeJobService()), TemplateStore(EXAMPLE_TEMPLATES), make_settings("pw"), ops=cast(Any, object())
    )
    routers = (jobs.router, cluster.router, templates_routes.router, ops.router)
    served = _keys(list(app.routes)) | set().union(*(_keys(list(r.routes)) for r in routers))
    keyhole = _keys(list(create_keyhole_app(cast(Any, object())).routes))
    assert keyhole == {ROUTE}
    assert set(ROUTES) == served | keyhole


async def test_the_openapi_document_states_each_routes_codes_from_the_table() -> None:
    paths = (await document())["paths"]
    checked = 0
    for path, operations in paths.items():
        for method, operation in operations.items():
            documented = {
                code
                for status, response in operation["responses"].items()
                if status.startswith(("4", "5")) and "allOf" in str(response)
                for code in response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"]
            }
            listed = {kind.code for kind in ROUTES[f"{method.upper()} {path}"]}
            if documented:
                assert documented == listed, f"{method.upper()} {path}"
                checked += 1
    assert checked >= 6  # every /jobs, /cluster and /templates route, and /metrics


async def test_submit_documents_scheduler_unavailable() -> None:
    submit = (await document())["paths"]["/jobs"]["post"]["responses"]["503"]
    assert (
        "scheduler-unavailable"
        in submit["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["enum"]
    )


def test_the_errors_page_is_current() -> None:
    current = (DOCS / ERRORS_FILE).read_text() if (DOCS / ERRORS_FILE).is_file() else ""
    assert current == route_table(), f"docs/{ERRORS_FILE} is not current; regenerate with: {REGENERATE}"


def test_the_page_gives_each_routes_status_and_code() -> None:
    page = route_table()
    jobs_section = page.split("## `GET /jobs/{job_id}`")[1].split("## ")[0]
    assert f"| {NoSuchJob.status} | `{NoSuchJob.code}` |" in jobs_section
    assert f"| {Unauthorized.status} | `{Unauthorized.code}` |" in jobs_section


def test_an_unlisted_answer_is_caught() -> None:
    """The check around every test fails on an error its route does not list, and passes the ones it lists."""
    assert undeclared([("GET /templates", "no-such-job")]) == ["GET /templates -> no-such-job"]
    assert undeclared([("GET /jobs/{job_id}", "no-such-job"), ("GET /nowhere", ANY_PATH[0].code)]) == []
    assert undeclared([("POST /keyhole/v1/forwards", "bad-signature")]) == []
