"""The keyhole service over HTTPS: the job's embedded client trusts only the CA in its script, never plain HTTP.

A runner whose keyhole has a certificate serves HTTPS only and writes ``https://`` URLs and the CA into every
job's script; the web application then gets its forward through a verified connection. A client whose embedded
CA did not sign the service's certificate gives up (and says why in the job log) instead of talking to it, and a
client holding a CA refuses an ``http://`` URL outright.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.app import Runner
from runner.config import Settings
from runner.keyhole import protocol
from runner.keyhole.script import expand_keyhole_request
from simulator import SimCluster
from tests.integration.conftest import api_client
from tests.integration.keyhole_support import EXAMPLES, WEBAPP_VARIABLES, submit, wait_available
from tests.integration.tls_support import self_signed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "dGxzLWtleWhvbGUtdG9rZW4tZm9yLXRlc3Q"
SECRET = "dGxzLXNlc3Npb24tc2VjcmV0LTE"
SCRIPT = "#!/bin/sh\n#KEYHOLE-REQUEST-PORTS 1\necho got $KEYHOLE_PORT0\n"


def tls_settings(make_settings: Callable[..., Settings], cert: Path, key: Path, **extra: Any) -> Settings:
    return make_settings(templates_dir=str(EXAMPLES), keyhole={"tls_cert": str(cert), "tls_key": str(key), **extra})


async def test_a_job_gets_its_forward_over_verified_https(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    async with Runner(tls_settings(make_settings, cert, key)) as started, api_client(started) as api:
        assert started.keyhole.server is not None
        assert started.keyhole.server.url.startswith("https://")
        plain = started.keyhole.server.url.replace("https://", "http://") + protocol.REQUEST_PATH
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(plain, content=b"{}")  # a TLS listener: plain HTTP gets nowhere
        job_id = await submit(api, "template_webapp.txt", WEBAPP_VARIABLES)

        await wait_available(api, job_id, 40)  # its client got the forward over verified HTTPS
        job = await started.store.get_job(job_id)
        assert job is not None
        log = sim_cluster.home_prefix / "alice" / f"bwvisu-job-{job.slurm_id}.out"
        assert "keyhole:" not in log.read_text()  # no retries, no refusals


def run_client(tmp_path: Path, urls: list[str], ca_pem: str) -> subprocess.CompletedProcess[str]:
    script = expand_keyhole_request(
        SCRIPT,
        job_id="j-tls",
        token=TOKEN,
        session_secret=SECRET,
        service_urls=urls,
        max_ports=1,
        deadline_seconds=3,
        initial_delay=0.2,
        ca_pem=ca_pem,
    )
    path = tmp_path / "job.sh"
    path.write_text(script)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}, "SLURM_JOB_NODELIST": "vis01"}
    return subprocess.run(["sh", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_a_client_whose_ca_did_not_sign_the_service_gives_up(
    make_settings: Callable[..., Settings], sim_cluster: SimCluster, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = self_signed(tmp_path / "other")  # same name, another key: not what the job's CA signed
    async with Runner(tls_settings(make_settings, cert, key)) as started:
        assert started.keyhole.server is not None
        url = started.keyhole.server.url
        done = await asyncio.to_thread(run_client, tmp_path, [url], other_cert.read_text())  # the loop serves
    assert done.returncode == 1  # the script stops: the client found no keyhole it trusts
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert "got" not in done.stdout


def test_a_client_holding_a_ca_refuses_plain_http(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ValueError, match="must be https"):
        run_client(tmp_path, ["http://127.0.0.1:9"], cert.read_text())
    # and the client itself, handed a plain URL anyway (a script edited by hand), refuses before any request
    from runner.keyhole import client  # noqa: PLC0415

    status = client.main(["--job-id", "j", "--ports", "1", "--url", "http://127.0.0.1:9"], {}, TOKEN, None, "PEM")
    assert status == client.EXIT_BAD_INPUT
