"""The hostile-input corpus: every entry gets a 4xx naming what was wrong, and none reaches etcd, Slurm or a
command node (the real job service does the checking, over parts that fail the test if touched)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.hostile_inputs import (
    HOSTILE_RAW_BODIES,
    HOSTILE_SUBMISSIONS,
    HUGE_VALUE_SUBMISSION,
    VALID_SUBMISSION,
    VALID_VARIABLES,
    Hostile,
)
from tests.unit.api_support import FakeJobService, NoIO, client_for, jobs_without_io, make_app

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("case", HOSTILE_SUBMISSIONS, ids=[c.label for c in HOSTILE_SUBMISSIONS])
async def test_hostile_submission_refused(case: Hostile) -> None:
    io = NoIO()
    async with client_for(make_app(jobs_without_io(io))) as client:
        response = await client.post("/jobs", json=case.body)
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"response", "error"}
    assert case.field in body["response"]
    assert io.touched == []


@pytest.mark.parametrize(
    ("label", "body", "expected"),
    [
        ("image-value", {"image_name": "a;b"}, ("invalid-variable", "variables.image_name: value may contain only")),
        ("dotdot", {"image_name": "../x"}, ("invalid-variable", "variables.image_name: value may not contain a '..'")),
        ("number", {"number_of_nodes": 1}, ("invalid-variable", "variables.number_of_nodes: Input should be")),
        ("name", {"a b": "1"}, ("invalid-variable", "variables.a b: variable names must be ASCII identifiers")),
    ],
)
async def test_messages_name_field_and_rule(
    client: httpx.AsyncClient, label: str, body: dict[str, object], expected: tuple[str, str]
) -> None:
    submission = {**VALID_SUBMISSION, "variables": {**VALID_VARIABLES, **body}}
    response = (await client.post("/jobs", json=submission)).json()
    assert response["error"] == expected[0]
    assert response["response"].startswith(expected[1]), response


async def test_hostile_uid_named(client: httpx.AsyncClient) -> None:
    response = (await client.post("/jobs", json={**VALID_SUBMISSION, "uid": "root;id"})).json()
    assert response == {
        "response": "uid: must be a POSIX user name: [a-z_][a-z0-9_-]{0,31}",
        "error": "invalid-user",
    }


@pytest.mark.parametrize("label", list(HOSTILE_RAW_BODIES))
async def test_malformed_bodies(client: httpx.AsyncClient, service: FakeJobService, label: str) -> None:
    response = await client.post(
        "/jobs", content=HOSTILE_RAW_BODIES[label], headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["response"].startswith("body: ")
    assert service.calls == []


async def test_body_without_json_content_type(client: httpx.AsyncClient, service: FakeJobService) -> None:
    response = await client.post("/jobs", content=json.dumps(VALID_SUBMISSION), headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert service.calls == []


async def test_ten_megabyte_value_refused_unparsed(
    client: httpx.AsyncClient, service: FakeJobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[int] = []
    real_loads = json.loads

    def spy(s: str | bytes, *args: object, **kwargs: object) -> object:
        parsed.append(len(s))
        return real_loads(s, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(json, "loads", spy)
    response = await client.post("/jobs", json=HUGE_VALUE_SUBMISSION)
    monkeypatch.undo()
    assert response.status_code == 413
    assert response.json() == {
        "response": "request body too large (limit 1048576 bytes)",
        "error": "payload-too-large",
    }
    assert parsed == []
    assert service.calls == []


async def test_streamed_body_without_length_is_capped(client: httpx.AsyncClient, service: FakeJobService) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"uid": "alice", "variables": {"image_name": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}}'

    response = await client.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert service.calls == []
