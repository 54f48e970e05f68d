"""Basic auth of the frontend: every endpoint refuses missing or wrong credentials; docs stay readable."""

from __future__ import annotations

import base64
import secrets

import pytest

from tests.hostile_inputs import VALID_SUBMISSION
from tests.unit.api_support import PASSWORD, USER, FakeJobService, client_for, make_app

pytestmark = pytest.mark.unit

ENDPOINTS = [
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/job-1"),
    ("DELETE", "/jobs/job-1"),
    ("GET", "/cluster/check-user/alice"),
    ("GET", "/templates"),
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CREDENTIALS = {
    "missing": {},
    "wrong-user": basic("bwvisu-web2", PASSWORD),
    "wrong-password": basic(USER, PASSWORD + "x"),
    "empty-password": basic(USER, ""),
    "password-prefix": basic(USER, PASSWORD[:-1]),
    "swapped": basic(PASSWORD, USER),
    "not-base64": {"Authorization": "Basic !!!"},
    "bearer": {"Authorization": f"Bearer {PASSWORD}"},
    "unicode": basic("bwvisu-wëb", PASSWORD),
}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("label", list(CREDENTIALS))
async def test_refused_without_right_credentials(method: str, path: str, label: str) -> None:
    service = FakeJobService()
    async with client_for(make_app(service), auth=False) as client:
        response = await client.request(method, path, json=VALID_SUBMISSION, headers=CREDENTIALS[label])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.json() == {"response": "authentication required", "error": "unauthorized"}
    assert service.calls == []


async def test_empty_configured_password_refuses_everyone() -> None:
    service = FakeJobService()
    async with client_for(make_app(service, password=""), auth=False) as client:
        response = await client.get("/jobs", headers=basic(USER, ""))
    assert response.status_code == 401
    assert service.calls == []


async def test_right_credentials_accepted() -> None:
    async with client_for(make_app(FakeJobService())) as client:
        assert (await client.get("/jobs")).status_code == 200


async def test_both_parts_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(secrets, "compare_digest", spy)
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        response = await client.get("/jobs", headers=basic("nobody", "guess"))
    assert response.status_code == 401
    assert compared == [(b"nobody", USER.encode()), (b"guess", PASSWORD.encode())]


async def test_openapi_docs_served() -> None:
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert set(schema["paths"]) == {
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/events",
        "/cluster/check-user/{username}",
        "/templates",
    }
    submit = schema["components"]["schemas"]["SubmitRequest"]
    assert set(submit["properties"]) == {"uid", "template-name", "variables"}
    assert "job-id" in schema["components"]["schemas"]["JobResponse"]["properties"]
    assert "HTTPBasic" in schema["components"]["securitySchemes"]
