"""The /jobs endpoints against an in-memory job service: SPEC's JSON shapes, status codes and messages."""

from __future__ import annotations

import logging

import httpx
import pytest

from runner.errors import ClusterUnavailable, SchedulerError, StateUnavailable
from runner.records import Forward, JobState
from tests.hostile_inputs import VALID_SUBMISSION, VALID_VARIABLES
from tests.unit.api_support import FakeJobService, NoIO, client_for, jobs_without_io, make_app

pytestmark = pytest.mark.unit


FORWARD = Forward(
    internal_port=50001, external_port=50123, external_ip="193.196.1.1", gateway_ssh_ip="gw1", internal_ip="n1"
)


async def test_submit_spec_example(client: httpx.AsyncClient, service: FakeJobService) -> None:
    response = await client.post("/jobs", json=VALID_SUBMISSION)
    assert response.status_code == 200
    assert response.json() == {"job-id": "job-1"}
    assert service.submits == [("alice", "template_xpra.txt", VALID_VARIABLES)]


async def test_submit_ignores_unknown_fields(client: httpx.AsyncClient, service: FakeJobService) -> None:
    response = await client.post("/jobs", json={**VALID_SUBMISSION, "frontend-extra": 1})
    assert response.status_code == 200
    assert len(service.submits) == 1


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (SchedulerError(internal="sbatch: error: invalid partition"), 502, "scheduler-error"),
        (ClusterUnavailable(internal="cmd1: connection refused"), 503, "cluster-unavailable"),
        (StateUnavailable(internal="etcd down"), 503, "state-unavailable"),
    ],
)
async def test_submit_service_errors_keep_internal_detail_private(
    client: httpx.AsyncClient,
    service: FakeJobService,
    error: Exception,
    status: int,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service.fail_with = error
    with caplog.at_level(logging.INFO, logger="runner.api"):
        response = await client.post("/jobs", json=VALID_SUBMISSION)
    assert response.status_code == status
    assert response.json() == {"response": error.public, "error": code}  # type: ignore[attr-defined]
    assert error.internal not in response.text  # type: ignore[attr-defined]
    assert error.internal in caplog.text  # type: ignore[attr-defined]


async def test_unexpected_error_is_a_bare_500(
    client: httpx.AsyncClient, service: FakeJobService, caplog: pytest.LogCaptureFixture
) -> None:
    service.fail_with = KeyError("etcd key /bwvisu/secret-token-abc")
    with caplog.at_level(logging.ERROR, logger="runner.api"):
        response = await client.post("/jobs", json=VALID_SUBMISSION)
    assert response.status_code == 500
    assert response.json() == {"response": "internal error", "error": "internal-error"}
    assert "secret-token" in caplog.text  # logged with its traceback, not shown


async def test_unknown_template_rejected_before_any_io() -> None:
    io = NoIO()
    async with client_for(make_app(jobs_without_io(io))) as client:
        response = await client.post("/jobs", json={**VALID_SUBMISSION, "template-name": "template_nope.txt"})
    assert response.status_code == 422
    assert response.json() == {"response": "unknown template 'template_nope.txt'", "error": "unknown-template"}
    assert io.touched == []


async def test_missing_template_variables_named() -> None:
    io = NoIO()
    body = {**VALID_SUBMISSION, "variables": {"number_of_nodes": "1", "tasks_per_node": "1"}}
    async with client_for(make_app(jobs_without_io(io))) as client:
        response = await client.post("/jobs", json=body)
    assert io.touched == []
    assert response.status_code == 422
    assert response.json()["error"] == "invalid-variable"
    assert "missing expected_runtime_in_minutes, image_name" in response.json()["response"]


async def test_get_job_spec_shape_while_submitted(client: httpx.AsyncClient, service: FakeJobService) -> None:
    record = service.add(template_name="template_xpra.txt", variables=VALID_VARIABLES, forwards=[FORWARD])
    response = await client.get(f"/jobs/{record.job_id}")
    assert response.status_code == 200
    assert response.json() == {
        "job-id": record.job_id,
        "batch-script": {"template-name": "template_xpra.txt", "variables": VALID_VARIABLES},
        "services": [],
        "state": "submitted",
        "uid": "alice",
        "details": {},
    }


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (JobState.RUNNING, False),
        (JobState.AVAILABLE, True),
        (JobState.COMPLETING, False),
        (JobState.FINISHED, True),
    ],
)
async def test_services_only_when_available_or_kept_when_finished(
    client: httpx.AsyncClient, service: FakeJobService, state: JobState, shown: bool
) -> None:
    details = {"JobState": "RUNNING", "NodeList": "n1"}
    record = service.add(state=state, forwards=[FORWARD], details=details)
    body = (await client.get(f"/jobs/{record.job_id}")).json()
    assert body["state"] == state.value
    assert body["details"] == details
    expected = [
        {"internal-port": 50001, "external-port": 50123, "external-ip": "193.196.1.1", "password": None, "url": None}
    ]
    assert body["services"] == (expected if shown else [])


@pytest.mark.parametrize("state", [JobState.AVAILABLE, JobState.FINISHED])
async def test_an_available_service_carries_its_session_password_and_url(
    client: httpx.AsyncClient, service: FakeJobService, state: JobState
) -> None:
    pattern = "http://{host}:{port}/?password={password}"
    record = service.add(state=state, forwards=[FORWARD], session_url=pattern)
    service.secrets[record.job_id] = "s3cr-t_Kx"
    body = (await client.get(f"/jobs/{record.job_id}")).json()
    [shown] = body["services"]
    assert (shown["external-ip"], shown["external-port"]) == ("193.196.1.1", 50123)
    if state is JobState.AVAILABLE:
        assert shown["password"] == "s3cr-t_Kx"
        assert shown["url"] == "http://193.196.1.1:50123/?password=s3cr-t_Kx"
    else:  # a finished job's secret is gone: its last services stay, without a way in
        assert (shown["password"], shown["url"]) == (None, None)


async def test_the_password_is_asked_for_only_for_available_jobs(
    client: httpx.AsyncClient, service: FakeJobService
) -> None:
    record = service.add(state=JobState.RUNNING, forwards=[FORWARD], session_url="http://{host}:{port}/#{password}")
    service.secrets[record.job_id] = "s3cr-t_Kx"
    await client.get(f"/jobs/{record.job_id}")
    assert ("session_secret", (record.job_id,)) not in service.calls


async def test_get_unknown_job(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/job-999")
    assert response.status_code == 404
    assert response.json() == {"response": "no such job", "error": "no-such-job"}


@pytest.mark.parametrize("job_id", ["...", "a b", "$(id)", "a;b", "%00", "-x", "x" * 200, "%E2%80%A4"])
async def test_malformed_job_ids_never_reach_service(
    client: httpx.AsyncClient, service: FakeJobService, job_id: str
) -> None:
    get = await client.get(f"/jobs/{job_id}")
    delete = await client.delete(f"/jobs/{job_id}")
    assert get.status_code == 404
    assert get.json()["response"] == "no such job"
    assert delete.status_code == 404
    assert delete.json()["response"] == "no such running job"
    assert service.calls == []


async def test_cancel(client: httpx.AsyncClient, service: FakeJobService) -> None:
    record = service.add(state=JobState.RUNNING)
    response = await client.delete(f"/jobs/{record.job_id}")
    assert response.status_code == 200
    assert response.json() == {"response": "job cancelled"}
    assert service.jobs[record.job_id].cancel_requested


@pytest.mark.parametrize("known", [False, True])
async def test_cancel_unknown_or_finished(client: httpx.AsyncClient, service: FakeJobService, known: bool) -> None:
    job_id = service.add(state=JobState.FINISHED).job_id if known else "job-404"
    response = await client.delete(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.json() == {"response": "no such running job", "error": "no-such-running-job"}


async def test_list_running_jobs(client: httpx.AsyncClient, service: FakeJobService) -> None:
    assert (await client.get("/jobs")).json() == {"jobs": []}
    a = service.add(state=JobState.SUBMITTED).job_id
    service.add(state=JobState.FINISHED)
    c = service.add(state=JobState.AVAILABLE).job_id
    response = await client.get("/jobs")
    assert response.status_code == 200
    assert response.json() == {"jobs": [a, c]}


async def test_unknown_route_and_method_use_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"response": "not found", "error": "not-found"}
    wrong = await client.put("/jobs", json={})
    assert wrong.status_code == 405
    assert wrong.json() == {"response": "method not allowed", "error": "method-not-allowed"}
