"""A 405 names every method its path has (``Allow``), over a real socket: Starlette alone names only one route's."""

from __future__ import annotations

import httpx
import pytest

from runner.config import ApiSettings
from runner.web.server import ApiServer
from tests.unit.api_support import AUTH, FakeJobService, make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/jobs", "GET, POST"),
        ("OPTIONS", "/jobs", "GET, POST"),
        ("PATCH", "/jobs/job-1", "DELETE, GET"),
        ("POST", "/jobs/job-1", "DELETE, GET"),
        ("DELETE", "/templates", "GET"),
        ("POST", "/cluster/check-user/alice", "GET"),
        ("POST", "/docs/assets/swagger-ui/swagger-ui.css", "GET, HEAD"),
        ("DELETE", "/docs", "GET"),
    ],
)
async def test_method_not_allowed_lists_every_method_of_the_path(method: str, path: str, allow: str) -> None:
    async with (
        ApiServer(make_app(FakeJobService()), ApiSettings(host="127.0.0.1", port=0)) as server,
        httpx.AsyncClient(base_url=server.url, headers=AUTH) as client,
    ):
        response = await client.request(method, path)
        # what the header promises is really there: each listed method is not answered 405
        others = [await client.request(m, path) for m in allow.split(", ") if m != "DELETE"]
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"response": "method not allowed", "error": "method-not-allowed"}
    assert all(other.status_code != 405 for other in others)
