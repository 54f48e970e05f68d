"""``python -m runner jobs list|show|cancel`` as a real process against a runner's API on a real socket.

The runner runs on a simulated cluster with a real etcd; the command reads the API password from the config,
the environment or a file, never argv, and answers with a table, a clear error and a distinct exit status.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner.app import Runner
from runner.config import settings_from_mapping
from runner.web.server import ApiServer
from simulator import SimCluster
from simulator.etcd import EtcdServer, free_port
from tests.integration.conftest import API_AUTH, runner_config
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, submit
from tests.polling import wait_until
from tests.runner_cli import run_runner

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@dataclass(frozen=True)
class Served:
    url: str
    config: Path
    api: httpx.AsyncClient


@pytest.fixture
async def served(
    sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str, tmp_path: Path
) -> AsyncIterator[Served]:
    data = runner_config(
        sim_cluster,
        etcd_server,
        etcd_prefix,
        templates_dir=str(EXAMPLES),
        api={"user": API_AUTH[0], "password": API_AUTH[1], "host": "127.0.0.1", "port": 0},
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    settings = settings_from_mapping(data)
    async with (
        Runner(settings) as runner,
        ApiServer(runner.app, settings.api) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=30, trust_env=False) as api,
    ):
        yield Served(server.url, path, api)


async def jobs_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run_runner("jobs", *argv, clean_env=True, env=env)


async def test_list_show_cancel_a_real_job(served: Served) -> None:
    job_id = await submit(served.api, "template_webapp.txt", WEBAPP_VARIABLES)
    common = ["--config", str(served.config), "--url", served.url]

    status, out, err = await jobs_cli(*common, "list")
    assert status == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["JOB", "STATE", "USER", "TEMPLATE"]
    [row] = [r.split() for r in rows if r.startswith(job_id)]
    assert row[2:] == ["alice", "template_webapp.txt"]

    async def available() -> bool:
        state: str = (await served.api.get(f"/jobs/{job_id}")).json()["state"]
        return state == "available"

    await wait_until(available, 40, "the job never became available")
    status, out, err = await jobs_cli(*common, "show", job_id)
    assert status == 0, err
    assert f"job:       {job_id}" in out
    assert "state:     available" in out
    secret = (await served.api.get(f"/jobs/{job_id}")).json()["services"][0]["password"]
    assert secret not in out
    assert "password: ********" in out
    status, out, _ = await jobs_cli(*common, "show", job_id, "--show-secrets")
    assert secret in out

    status, out, err = await jobs_cli(*common, "cancel", job_id)
    assert (status, out.strip()) == (0, f"{job_id}: job cancelled"), err
    status, _, err = await jobs_cli(*common, "cancel", job_id)
    assert status == 1
    assert "error: DELETE" in err


async def test_password_from_file_or_environment_and_clear_errors(served: Served, tmp_path: Path) -> None:
    url = ["--url", served.url, "--user", API_AUTH[0]]
    secret_file = tmp_path / "password"
    secret_file.write_text(API_AUTH[1] + "\n")
    status, _, err = await jobs_cli(*url, "--password-file", str(secret_file), "list")
    assert status == 0, err
    status, _, err = await jobs_cli(*url, "list", env={"RUNNER_API__PASSWORD": API_AUTH[1]})
    assert status == 0, err
    # --url and a password are enough: no config file, the API's default user
    status, _, err = await jobs_cli("--url", served.url, "list", env={"RUNNER_API__PASSWORD": API_AUTH[1]})
    assert status == 0, err

    secret_file.write_text("wrong\n")
    status, _, err = await jobs_cli(*url, "--password-file", str(secret_file), "list")
    assert status == 3
    assert "refused the credentials (401)" in err
    assert f"user {API_AUTH[0]}" in err
    assert "wrong" not in err

    status, _, err = await jobs_cli("--config", str(served.config), "--url", served.url, "show", "j-nosuchjob")
    assert status == 1
    assert "404" in err

    closed = f"http://127.0.0.1:{free_port()}"
    status, _, err = await jobs_cli("--config", str(served.config), "--url", closed, "list")
    assert status == 4
    assert f"cannot reach the API at {closed}" in err

    status, _, err = await jobs_cli(*url, "list")  # no password anywhere, no config file found
    assert status == 2
    assert err.startswith("error: ")
