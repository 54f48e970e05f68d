"""``bwvisu-testbed up``, ``status``, ``down`` as a developer runs them: a small cluster with a runner attached, in
its container (the runner image), driven through its published API the whole way: a job submitted, available,
and its forward answering from the public network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers import runner_process
from containers.cleanup import list_runs
from tests.e2e.e2e_support import exec_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def bwvisu_testbed(state: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BWVISU_TESTBED_STATE": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "containers.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def state_root(docker_engine: None, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for state in tmp_path.iterdir():  # whatever a failed test left: its runner and its containers
        if state.is_dir() and not state.name.startswith("starting-"):
            bwvisu_testbed(tmp_path, "down", state.name, timeout=120)


# From the client (the public network): the status line and body of GET url, redirects not followed.
GET = """
import http.client, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
conn.request("GET", url.path + ("?" + url.query if url.query else ""))
answer = conn.getresponse()
print(answer.status)
print(answer.read().decode(), end="")
"""


def from_public_network(run: str, url: str) -> tuple[int, str]:
    code, out = exec_in(f"bwvisu-{run}-client", ["python3", "-c", GET, url], user="alice")
    assert code == 0, out
    status, _, body = out.partition("\n")
    return int(status), body


def wait_available(api: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if body["state"] == "available":
            return body
        assert body["state"] in ("submitted", "running"), body
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not available after {timeout} s: {body}")


def test_up_status_a_job_through_the_runner_container_down(state_root: Path) -> None:
    up = bwvisu_testbed(state_root, "up", "--compute", "1", "--gateways", "1")
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = re.search(r"^testbed (\S+) is up", up.stdout, re.MULTILINE)
    assert run_id, up.stdout
    run = run_id.group(1)
    state = state_root / run
    info = runner_process.info(state)
    assert info is not None
    assert f"runner:       {info.url}   (container {info.container}," in up.stdout
    assert f"credentials:  {info.user} / {info.password}" in up.stdout
    assert f"curl -u '{info.user}:{info.password}' {info.url}/jobs" in up.stdout
    assert runner_process.answers(info)

    status = bwvisu_testbed(state_root, "status")
    assert status.returncode == 0, status.stderr
    assert f"runner {info.container} running, {info.url} answering" in status.stdout

    # the runner in its container: an unprivileged user, its configuration and keys mounted read-only
    code, uid = exec_in(info.container, ["id", "-u"])
    assert code == 0, uid
    assert uid.strip() != "0"
    code, out = exec_in(info.container, ["touch", f"{runner_process.CONFIG_DIR}/ssh/known_hosts"])
    assert code != 0
    assert "Read-only file system" in out

    # a job's whole path through the published API: submitted, available, its forward open to the public network
    with httpx.Client(base_url=info.url, auth=(info.user, info.password), timeout=30, trust_env=False) as api:
        job = {
            "uid": "alice",
            "template-name": "template_webapp.txt",
            "variables": {"expected_runtime_in_minutes": "15", "number_of_nodes": "1", "tasks_per_node": "1"},
        }
        submitted = api.post("/jobs", json=job)
        assert submitted.status_code == 200, submitted.text
        job_id = submitted.json()["job-id"]
        [service] = wait_available(api, job_id)["services"]
    assert from_public_network(run, f"http://{service['external-ip']}:{service['external-port']}/") == (
        401,
        "this session needs its password: open the link the portal shows\n",
    )
    admitted, _ = from_public_network(run, service["url"])
    assert admitted == 303  # the secret in the API's url opens the session

    down = bwvisu_testbed(state_root, "down", run, timeout=120)
    assert down.returncode == 0, down.stderr
    assert f"stopped runner {info.container}" in down.stdout
    assert runner_process.status(info) is None
    assert run not in list_runs()
    assert not state.exists()
