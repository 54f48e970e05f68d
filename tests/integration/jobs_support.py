"""Jobs through the runner's API, as the integration tests drive them: submit one, read its state, wait for one."""

from __future__ import annotations

import httpx

from tests.polling import eventually


async def submit(api: httpx.AsyncClient, template: str = "sleep.txt", **variables: str) -> str:
    body = {"uid": "alice", "template-name": template, "variables": variables or {"minutes": "5", "seconds": "600"}}
    response = await api.post("/jobs", json=body)
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job-id"]
    return job_id


async def state_of(api: httpx.AsyncClient, job_id: str) -> str:
    response = await api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state


async def wait_state(api: httpx.AsyncClient, job_id: str, state: str, timeout: float = 30) -> dict[str, object]:
    """The job's body once its state is ``state``; on timeout the failure names the last state seen."""
    await eventually(lambda: state_of(api, job_id), lambda seen: seen == state, timeout, f"job {job_id} in {state}")
    body: dict[str, object] = (await api.get(f"/jobs/{job_id}")).json()
    return body
