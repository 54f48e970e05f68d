"""/cluster/check-user and /templates."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.hostile_inputs import HOSTILE_UIDS
from tests.unit.api_support import EXAMPLE_TEMPLATES, FakeJobService, client_for, make_app

pytestmark = pytest.mark.unit


async def test_check_user_exists(client: httpx.AsyncClient, service: FakeJobService) -> None:
    response = await client.get("/cluster/check-user/alice")
    assert response.status_code == 200
    assert response.json() == {"response": "success"}
    assert service.calls == [("check_user", ("alice",))]


async def test_check_user_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/cluster/check-user/mallory")
    assert response.status_code == 404
    assert response.json() == {"response": "no such user", "error": "no-such-user"}


@pytest.mark.parametrize(
    "username",
    [v for k, v in HOSTILE_UIDS.items() if k not in {"uid-empty", "uid-dotdot", "uid-slash"}],
    ids=[k for k in HOSTILE_UIDS if k not in {"uid-empty", "uid-dotdot", "uid-slash"}],
)
async def test_check_user_hostile_names_never_reach_cluster(
    client: httpx.AsyncClient, service: FakeJobService, username: str
) -> None:
    response = await client.get("/cluster/check-user/" + quote(username, safe=""))
    assert response.status_code == 422, response.text
    assert response.json()["response"].startswith("username: must be a POSIX user name")
    assert response.json()["error"] == "invalid-user"
    assert service.calls == []


async def test_templates_listed_with_variables(client: httpx.AsyncClient) -> None:
    response = await client.get("/templates")
    assert response.status_code == 200
    assert response.json() == {
        "templates": [
            {
                "name": "template_webapp.txt",
                "variables": ["expected_runtime_in_minutes", "number_of_nodes", "tasks_per_node"],
                "keyhole-ports": 1,
                "session-secret": True,
            },
            {
                "name": "template_xpra.txt",
                "variables": ["expected_runtime_in_minutes", "number_of_nodes", "tasks_per_node", "image_name"],
                "keyhole-ports": 1,
                "session-secret": True,
            },
        ]
    }
    assert EXAMPLE_TEMPLATES.is_dir()


async def test_broken_template_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.txt").write_text("{{a}}\n")
    (tmp_path / "bad.txt").write_text("#KEYHOLE-REQUEST-PORTS 1\n#KEYHOLE-REQUEST-PORTS 1\n")
    async with client_for(make_app(FakeJobService(), templates=tmp_path)) as client:
        response = await client.get("/templates")
    assert response.json() == {
        "templates": [{"name": "good.txt", "variables": ["a"], "keyhole-ports": None, "session-secret": False}]
    }
    assert "bad.txt" in caplog.text
