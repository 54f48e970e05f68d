"""Pushed job state over a real socket: ``GET /jobs/<id>/events`` (Server-Sent Events) and
``GET /jobs/<id>?wait-for=<state>``, fed by the runner's one etcd watch, so a change another runner process
writes reaches the stream too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aetcd
import httpx
import pytest

from runner.app import Runner
from runner.records import JobRecord
from runner.state import StateStore
from runner.web.server import ApiServer
from tests.integration.conftest import API_AUTH
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLEEP = {"uid": "alice", "template-name": "sleep.txt", "variables": {"minutes": "5", "seconds": "600"}}


@pytest.fixture
async def client(runner: Runner) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        ApiServer(runner.app, runner.settings.api.model_copy(update={"host": "127.0.0.1", "port": 0})) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=60, trust_env=False) as api,
    ):
        yield api


async def _submit(api: httpx.AsyncClient) -> str:
    response = await api.post("/jobs", json=SLEEP)
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job-id"]
    return job_id


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object] | None]]:
    """``(event name, data)`` of each SSE event; comment lines come as ``("comment", None)``."""
    name, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", None
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")
        elif line == "" and name:
            yield name, json.loads(data)
            name, data = "", ""


async def _until_note(seen: AsyncIterator[tuple[str, dict[str, object] | None]], note: str) -> None:
    """Read events until one whose details carry ``note``."""
    async with asyncio.timeout(30):
        async for _, data in seen:
            assert data is not None
            details = data["details"]
            assert isinstance(details, dict)
            if details.get("note") == note:
                return
    raise AssertionError(f"the stream ended without a change noted {note!r}")


async def test_the_stream_starts_with_the_job_follows_it_and_ends_after_finished(
    client: httpx.AsyncClient, runner: Runner
) -> None:
    job_id = await _submit(client)
    states: list[str] = []
    async with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for name, data in _events(response):
            assert name == "job"
            assert data is not None
            assert data["job-id"] == job_id
            states.append(str(data["state"]))
            if states[-1] == "running" and "cancelled" not in states:
                states.append("cancelled")
                cancelled = await client.delete(f"/jobs/{job_id}")
                assert cancelled.status_code == 200, cancelled.text
    # the stream ended by itself, after the finished state; the first event was the state at subscription
    assert states[-1] == "finished"
    assert states[0] in ("submitted", "running")
    assert "running" in states
    assert runner.feed.following == 0  # the follower went with the stream


async def test_a_change_written_by_another_process_reaches_the_stream(
    client: httpx.AsyncClient, runner: Runner, etcd_client: aetcd.Client
) -> None:
    job_id = await _submit(client)
    other = StateStore(etcd_client, runner.settings.etcd_prefix)  # another client: as another runner process

    def noted(record: JobRecord) -> JobRecord:
        record.details["note"] = "from elsewhere"
        return record

    async with client.stream("GET", f"/jobs/{job_id}/events") as response:
        seen = _events(response)
        first = await anext(seen)
        assert first[0] == "job"
        await other.update_job(job_id, noted)
        await _until_note(seen, "from elsewhere")
    await client.delete(f"/jobs/{job_id}")


async def test_wait_for_answers_when_the_state_is_reached_or_at_the_timeout(client: httpx.AsyncClient) -> None:
    job_id = await _submit(client)
    running = await client.get(f"/jobs/{job_id}", params={"wait-for": "running", "timeout": "60"})
    assert running.status_code == 200, running.text
    assert running.json()["state"] == "running"
    # a state it will not reach in time: the answer comes at the timeout, with the state then
    later = await client.get(f"/jobs/{job_id}", params={"wait-for": "finished", "timeout": "0.5"})
    assert later.status_code == 200
    assert later.json()["state"] == "running"
    await client.delete(f"/jobs/{job_id}")
    finished = await client.get(f"/jobs/{job_id}", params={"wait-for": "finished", "timeout": "60"})
    assert finished.json()["state"] == "finished"


@pytest.mark.parametrize(
    ("params", "named"),
    [({"wait-for": "bogus"}, "wait-for"), ({"wait-for": "running", "timeout": "9999"}, "timeout")],
)
async def test_bad_wait_parameters_are_refused_naming_them(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    job_id = await _submit(client)
    response = await client.get(f"/jobs/{job_id}", params=params)
    assert response.status_code == 422
    assert named in response.json()["response"]
    await client.delete(f"/jobs/{job_id}")


async def test_the_stream_of_an_unknown_job_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/jobs/{'0' * 32}/events")
    assert response.status_code == 404
    assert response.json()["error"] == "no-such-job"


async def test_a_client_that_goes_away_leaves_no_follower(client: httpx.AsyncClient, runner: Runner) -> None:
    job_id = await _submit(client)
    async with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert (await anext(_events(response)))[0] == "job"
        assert runner.feed.following == 1

    # the connection is closed mid-stream: the server notices and the follower goes
    async def gone() -> bool:
        return runner.feed.following == 0

    await wait_until(gone, 30, "the follower of a closed stream stayed")
    await client.delete(f"/jobs/{job_id}")


async def test_the_feed_holds_no_watch_while_nobody_follows(client: httpx.AsyncClient, runner: Runner) -> None:
    job_id = await _submit(client)
    await wait_until(_state_is(client, job_id, "running"), 30, "the job never ran")
    # the job changed state, and no watch was ever opened for it: nobody follows jobs here
    assert runner.feed.watches == 0
    assert not runner.feed.ready.is_set()
    await client.delete(f"/jobs/{job_id}")


async def test_the_watch_opens_for_a_follower_and_closes_after_the_last_one_lingers(
    client: httpx.AsyncClient, runner: Runner, etcd_client: aetcd.Client
) -> None:
    runner.feed.linger = 0.5
    job_id = await _submit(client)
    other = StateStore(etcd_client, runner.settings.etcd_prefix)

    def noted(record: JobRecord) -> JobRecord:
        record.details["note"] = "while the watch opened"
        return record

    async with client.stream("GET", f"/jobs/{job_id}/events") as response:
        seen = _events(response)
        await anext(seen)
        await other.update_job(job_id, noted)  # maybe before the watch is open: a resync must bring it
        await _until_note(seen, "while the watch opened")
        assert runner.feed.ready.is_set()
    opened = runner.feed.watches
    assert opened == 1

    async def closed() -> bool:
        return not runner.feed.ready.is_set()

    await wait_until(closed, 30, "the feed's watch stayed open with nobody following")
    # a later follower opens a new watch
    async with client.stream("GET", f"/jobs/{job_id}/events") as response:
        assert (await anext(_events(response)))[0] == "job"

        async def reopened() -> bool:
            return runner.feed.watches == opened + 1 and runner.feed.ready.is_set()

        await wait_until(reopened, 30, "a new follower opened no watch")
    await client.delete(f"/jobs/{job_id}")


def _state_is(client: httpx.AsyncClient, job_id: str, state: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        response = await client.get(f"/jobs/{job_id}")
        return bool(response.json()["state"] == state)

    return check
