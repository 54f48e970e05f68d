"""The runner process is killed (SIGKILL) in the middle of a burst of submissions and started again:
every accepted job is found with the right state, and no Slurm job is orphaned or submitted twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from runner.slurm.cli import bwvisu_state
from simulator import SimCluster
from simulator.etcd import EtcdServer
from simulator.testing import wait_for
from tests.integration.conftest import API_AUTH, runner_config
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BODY = {"uid": "alice", "template-name": "sleep.txt", "variables": {"minutes": "30", "seconds": "3600"}}


@contextlib.asynccontextmanager
async def runner_process(config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m runner serve`` as a real process; yields it and its API URL once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "--log-level", "WARNING", "serve", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while not (line := (await proc.stdout.readline()).decode()).startswith("runner API:"):
                assert line, "the runner exited before serving"
        yield proc, line.split()[2]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_kill_mid_burst_loses_nothing(
    sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str, tmp_path: Path
) -> None:
    data = runner_config(sim_cluster, etcd_server, etcd_prefix)
    data["api"] = {**data["api"], "host": "127.0.0.1", "port": 0}
    data["ssh"] = {**data["ssh"], "command_timeout": 2}  # interrupted submissions are reconciled after 3x this
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))

    accepted: list[str] = []
    async with (
        runner_process(config) as (proc, url),
        httpx.AsyncClient(base_url=url, auth=API_AUTH, timeout=30) as api,
    ):

        async def one() -> None:
            with contextlib.suppress(httpx.HTTPError):
                response = await api.post("/jobs", json=BODY)
                if response.status_code == 200:
                    accepted.append(response.json()["job-id"])

        burst = [asyncio.create_task(one()) for _ in range(60)]
        await wait_for(lambda: len(accepted) >= 10, timeout=60)
        proc.send_signal(signal.SIGKILL)
        await asyncio.gather(*burst)
    assert 10 <= len(accepted) < 60, "the kill should land mid-burst"

    async with (
        runner_process(config) as (_, url),
        httpx.AsyncClient(base_url=url, auth=API_AUTH, timeout=30) as api,
    ):

        def expected(job_id: str) -> str | None:
            """bwVisu's state for the simulator's job of this runner job, or None if Slurm has none."""
            jobs = [j for j in sim_cluster.scheduler.jobs.values() if j.name == f"bwvisu-{job_id}"]
            assert len(jobs) <= 1, f"job {job_id} was submitted twice"
            return bwvisu_state(jobs[0].state.value).value if jobs else None

        async def matches_slurm(job_id: str) -> bool:
            response = await api.get(f"/jobs/{job_id}")
            want = expected(job_id)
            if want is None:  # an interrupted submission that never reached Slurm ends finished
                return response.status_code == 200 and response.json()["state"] == "finished"
            return response.status_code == 200 and response.json()["state"] == want

        for job_id in accepted:
            assert expected(job_id) is not None, f"accepted job {job_id} never reached Slurm"
        runner_ids = {j.name.removeprefix("bwvisu-") for j in sim_cluster.scheduler.jobs.values()}
        for job_id in sorted(set(accepted) | runner_ids):
            await wait_until(partial(matches_slurm, job_id), 60, f"job {job_id} disagrees with Slurm")

        async def active_are_slurms() -> bool:
            # interrupted submissions that never reached Slurm are finished after the grace period
            return set((await api.get("/jobs")).json()["jobs"]) == runner_ids

        await wait_until(active_are_slurms, 60, "GET /jobs never matched the jobs Slurm knows")


async def test_serve_never_prints_the_api_password(
    sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str, tmp_path: Path
) -> None:
    data = runner_config(sim_cluster, etcd_server, etcd_prefix)
    data["api"] = {**data["api"], "host": "127.0.0.1", "port": 0}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runner", "serve", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    printed = ""
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while "runner ready" not in printed or "curl" not in printed:
                line = (await proc.stdout.readline()).decode()
                assert line, f"the runner exited: {printed}"
                printed += line
        async with httpx.AsyncClient(timeout=10) as client:
            url = next(ln.split()[2] for ln in printed.splitlines() if ln.startswith("runner API:"))
            assert (await client.get(f"{url}/jobs", auth=API_AUTH)).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = await proc.communicate()
    printed += rest.decode()
    assert "credentials:  bwvisu-web / (password as configured)" in printed
    assert API_AUTH[1] not in printed


@pytest.mark.parametrize("known_hosts", [None, "missing"])
def test_serve_refuses_to_start_without_a_known_hosts_file(
    sim_cluster: SimCluster, etcd_server: EtcdServer, etcd_prefix: str, tmp_path: Path, known_hosts: str | None
) -> None:
    data = runner_config(sim_cluster, etcd_server, etcd_prefix)
    data["ssh"] = {k: v for k, v in data["ssh"].items() if k != "known_hosts"}
    if known_hosts is not None:
        data["ssh"]["known_hosts"] = str(tmp_path / known_hosts)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "serve", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: ssh.known-hosts: ")
    assert ("needs a known_hosts file" if known_hosts is None else "cannot read file") in done.stderr
