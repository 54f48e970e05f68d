"""``python -m runner`` as operators run it: its log at the default level, and SIGTERM / Ctrl-C shutting it down
in order (exit 0, no traceback, children stopped, temp folders gone, the leader lease revoked)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import aetcd
import httpx
import psutil
import pytest

from runner import __version__
from simulator import SimCluster
from simulator.etcd import EtcdServer
from tests.integration.conftest import API_AUTH, runner_config
from tests.integration.runner_process import API_PASSWORD, RunnerProcess

pytestmark = pytest.mark.integration

WEBAPP = {
    "uid": "alice",
    "template-name": "template_webapp.txt",
    "variables": {"expected_runtime_in_minutes": "15", "number_of_nodes": "1", "tasks_per_node": "1"},
}


def _until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.1)


def _state(api: httpx.Client, job_id: str) -> str:
    response = api.get(f"/jobs/{job_id}")
    response.raise_for_status()
    state: str = response.json()["state"]
    return state


def _one_job_life(url: str, user: str = "bwvisu-web", password: str = API_PASSWORD) -> None:
    with httpx.Client(base_url=url, auth=(user, password), timeout=30, trust_env=False) as api:
        created = api.post("/jobs", json=WEBAPP)
        assert created.status_code == 200, created.text
        job_id = created.json()["job-id"]
        _until(lambda: _state(api, job_id) == "available", f"job {job_id} available")
        assert api.delete(f"/jobs/{job_id}").status_code == 200
        _until(lambda: _state(api, job_id) == "finished", f"job {job_id} finished")


def _log_lines(lines: list[str]) -> list[str]:
    """The lines the logging system wrote (the banner is printed, not logged)."""
    return [line for line in lines if " INFO " in line or " WARNING " in line or " ERROR " in line]


@pytest.fixture
def tmp_env(tmp_path: Path) -> dict[str, str]:
    """The child's temporary folders go to a folder of the test's own, so what is left behind is visible."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    return {"TMPDIR": str(temp)}


def test_version_is_printed() -> None:
    with RunnerProcess("--version") as proc:
        assert proc.wait() == 0
        assert proc.output.strip() == f"bwvisu-runner {__version__}"


def test_dev_job_life_logs_few_lines_and_no_library_chatter(tmp_env: dict[str, str]) -> None:
    with RunnerProcess("dev", "--port", "0", env=tmp_env) as proc:
        url = proc.url()
        assert any(f"version {__version__}" in line for line in proc.lines), proc.output
        # the banner comes after the start-up lines (not buried under them); dev shows its password
        banner = next(i for i, line in enumerate(proc.lines) if line.startswith("runner API:"))
        ready = next(i for i, line in enumerate(proc.lines) if "runner ready" in line)
        assert ready < banner, proc.output
        assert f"credentials:  bwvisu-web / {API_PASSWORD}" in proc.lines
        _one_job_life(url)
        # the state change to finished is logged once the watcher saw it; wait for that line, then count
        proc.wait_for(lambda lines: any("-> finished" in line for line in lines), "finished logged")
        logged = _log_lines(proc.lines)
        assert len(logged) < 40, "\n".join(logged)
        assert not [line for line in proc.lines if "asyncssh" in line], proc.output
        # one line per state change, naming the job's user and node
        running = [line for line in logged if "-> running" in line or "-> available" in line]
        assert running, proc.output
        assert all("user alice" in line for line in running), running
        assert any("node " in line for line in running), running
        proc.send(signal.SIGTERM)
        assert proc.wait() == 0


def test_dev_takes_the_credentials_from_serves_variables_and_warns_on_the_old_spelling(
    tmp_env: dict[str, str],
) -> None:
    # one spelling for each setting: RUNNER_API__USER / RUNNER_API__PASSWORD, as for serve; the old single
    # underscore spelling is a variable that names no setting, ignored with a warning naming the right one
    env = {**tmp_env, "RUNNER_API__USER": "frontend", "RUNNER_API_PASSWORD": "old-spelling-password"}
    with RunnerProcess("dev", "--port", "0", env=env) as proc:
        url = proc.url()
        assert f"credentials:  frontend / {API_PASSWORD}" in proc.lines, proc.output
        assert any(
            "RUNNER_API_PASSWORD: not a runner setting, ignored (did you mean RUNNER_API__PASSWORD?)" in line
            for line in proc.lines
        ), proc.output
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as api:
            assert api.get("/templates", auth=("frontend", API_PASSWORD)).status_code == 200
            assert api.get("/templates", auth=("frontend", "old-spelling-password")).status_code == 401
        proc.send(signal.SIGTERM)
        assert proc.wait() == 0


def _etcd_child(proc: RunnerProcess) -> psutil.Process:
    child: psutil.Process = _until(
        lambda: next((c for c in proc.children() if Path(c.exe()).name == "etcd"), None), "etcd child", timeout=30
    )
    return child


def _assert_clean_stop(proc: RunnerProcess, etcd: psutil.Process, temp: Path, signame: str) -> None:
    assert proc.wait() == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
    assert any(f"shutting down ({signame})" in line for line in proc.lines), proc.output
    assert any("runner stopped" in line for line in proc.lines), proc.output
    assert not etcd.is_running(), "dev's etcd outlived the runner"
    assert list(temp.iterdir()) == [], f"left behind: {list(temp.iterdir())}"
    # etcd was stopped by the runner, after the leader lease was given back: revoking it did not fail
    assert "cannot revoke lease" not in proc.output, proc.output


def test_dev_sigterm_stops_everything(tmp_env: dict[str, str]) -> None:
    with RunnerProcess("dev", "--port", "0", env=tmp_env) as proc:
        proc.url()
        etcd = _etcd_child(proc)
        proc.send(signal.SIGTERM)
        _assert_clean_stop(proc, etcd, Path(tmp_env["TMPDIR"]), "SIGTERM")


def test_dev_ctrl_c_reaches_only_the_runner(tmp_env: dict[str, str]) -> None:
    with RunnerProcess("dev", "--port", "0", env=tmp_env) as proc:
        proc.url()
        etcd = _etcd_child(proc)
        assert proc.proc is not None
        # etcd lives in a session of its own: the terminal's SIGINT to the runner's group never reaches it
        assert os.getsid(etcd.pid) != os.getsid(proc.proc.pid)
        proc.signal_group(signal.SIGINT)
        _assert_clean_stop(proc, etcd, Path(tmp_env["TMPDIR"]), "SIGINT")


def _serve_config(tmp_path: Path, sim_cluster: SimCluster, etcd_server: EtcdServer, prefix: str) -> Path:
    data = runner_config(sim_cluster, etcd_server, prefix)
    data["api"] = {"host": "127.0.0.1", "port": 0, "user": API_AUTH[0], "password": API_AUTH[1]}
    data["templates_dir"] = str(Path(__file__).parents[2] / "runner" / "templates")
    data["watcher"] = {"interval": 0.2, "leader_ttl": 30}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


async def test_serve_sigterm_answers_the_request_in_flight_and_revokes_the_lease(
    tmp_path: Path, sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    config = _serve_config(tmp_path, sim_cluster, etcd_server, etcd_prefix)
    leader_key = f"{etcd_prefix}/leader/watchers".encode()
    with RunnerProcess("serve", "--config", str(config)) as proc:
        url = proc.url()
        deadline = time.monotonic() + 30
        while await etcd_client.get(leader_key) is None:
            assert time.monotonic() < deadline, "no leader"
            await _sleep_a_little()
        # a submission whose sbatch takes a while is in flight when SIGTERM arrives
        sim_cluster.faults.slow_command("sbatch", 2.0)
        calls = sim_cluster.faults.calls["sbatch"]
        answer: dict[str, httpx.Response] = {}

        def submit() -> None:
            with httpx.Client(base_url=url, auth=API_AUTH, timeout=30, trust_env=False) as api:
                answer["response"] = api.post("/jobs", json=WEBAPP)

        thread = threading.Thread(target=submit)
        thread.start()
        try:
            while sim_cluster.faults.calls["sbatch"] == calls:
                assert time.monotonic() < deadline + 30, "sbatch never called"
                await _sleep_a_little()
            proc.send(signal.SIGTERM)
            code = await _wait_process(proc)
        finally:
            thread.join(30)
            sim_cluster.faults.clear()
        assert code == 0, proc.output
        assert "Traceback" not in proc.output, proc.output
        assert answer["response"].status_code == 200, answer["response"].text
        # serve never prints the configured API password
        assert API_AUTH[1] not in proc.output
        assert any(line == "credentials:  bwvisu-web / (password as configured)" for line in proc.lines)
        # the lease was revoked at exit, not left to expire (its TTL is 30 s)
        assert await etcd_client.get(leader_key) is None


async def _sleep_a_little() -> None:
    await asyncio.sleep(0.05)


async def _wait_process(proc: RunnerProcess) -> int:
    return await asyncio.to_thread(proc.wait)
