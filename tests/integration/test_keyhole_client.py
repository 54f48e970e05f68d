"""The expanded keyhole snippet run by a real shell against a local stand-in for the keyhole service."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.errors import Forbidden
from runner.keyhole.protocol import (
    REQUEST_PATH,
    KeyholeRequest,
    encode_forwards,
    encode_refusal,
    parse_request,
    verify_request,
)
from runner.keyhole.script import expand_keyhole_request
from runner.records import Forward

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# what the service answers; only each forward's public address reaches the job
ANSWER = [
    Forward(internal_port=i, external_port=e, external_ip=ip, gateway_ssh_ip="10.0.0.1", internal_ip="10.1.0.1")
    for i, e, ip in [(50001, 50101, "192.0.2.7"), (50002, 50102, "192.0.2.8")]
]


TOKEN = "cGVyLWpvYi10b2tlbi1mb3ItdGVzdGluZw"
SECRET = "c2Vzc2lvbi1zZWNyZXQtb2Ytai03"
SCRIPT = """#!/bin/sh
set -u
echo before
#KEYHOLE-REQUEST-PORTS 2
echo "P0=$KEYHOLE_PORT0 G0=$KEYHOLE_GATEWAY0 E0=$KEYHOLE_EXTERNAL_PORT0"
echo "P1=$KEYHOLE_PORT1 G1=$KEYHOLE_GATEWAY1 E1=$KEYHOLE_EXTERNAL_PORT1"
echo "S=$(printenv KEYHOLE_SESSION_SECRET)"
"""


class FakeService:
    """Answers like the keyhole service: verifies the HMAC, then forwards or refuses."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.requests: list[KeyholeRequest] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == REQUEST_PATH
                request = parse_request(body)
                verify_request(request, TOKEN, now=time.time())
                service.requests.append(request)
                if service.refuse:
                    status, answer = 403, encode_refusal(Forbidden("this job already has its ports"))
                else:
                    status = 200
                    answer = encode_forwards(ANSWER)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        # bound now, listening only after start(): until then connections are refused
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.server.server_activate()
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[FakeService]:
    svc = FakeService()
    try:
        yield svc
    finally:
        svc.close()


def _script(tmp_path: Path, urls: list[str], **kw: object) -> Path:
    text = expand_keyhole_request(
        SCRIPT,
        job_id="j-7",
        token=TOKEN,
        session_secret=SECRET,
        service_urls=urls,
        max_ports=4,
        **kw,  # type: ignore[arg-type]
    )
    path = tmp_path / "job.sh"
    path.write_text(text)
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["SLURM_JOB_NODELIST"] = "vis[01-02],gpu5"
    env["http_proxy"] = env["HTTP_PROXY"] = "http://192.0.2.1:9"  # must be ignored
    return env


EXPECTED = f"before\nP0=50001 G0=192.0.2.7 E0=50101\nP1=50002 G1=192.0.2.8 E1=50102\nS={SECRET}\n"


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_snippet_exports_the_forwards(tmp_path: Path, service: FakeService, shell: str) -> None:
    service.start()
    path = _script(tmp_path, [service.url])
    done = subprocess.run([shell, str(path)], env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (0, EXPECTED), done.stderr
    assert done.stderr == ""
    (request,) = service.requests
    assert request.job_id == "j-7"
    assert request.hostnames == ("vis01", "vis02", "gpu5")
    assert request.ports == 2


def test_snippet_falls_back_to_slurm_nodelist(tmp_path: Path, service: FakeService) -> None:
    service.start()
    env = _env()
    env["SLURM_NODELIST"] = env.pop("SLURM_JOB_NODELIST")
    done = subprocess.run(
        ["bash", str(_script(tmp_path, [service.url]))],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert service.requests[0].hostnames == ("vis01", "vis02", "gpu5")


def test_a_refusal_is_logged_and_stops_the_script(tmp_path: Path) -> None:
    svc = FakeService(refuse=True)
    try:
        svc.start()
        path = _script(tmp_path, [svc.url])
        done = subprocess.run(["bash", str(path)], env=_env(), capture_output=True, text=True, timeout=30, check=False)
    finally:
        svc.close()
    assert done.returncode == 1
    assert done.stdout == "before\n"  # nothing after the keyhole line ran
    assert "keyhole: the keyhole service refused the request: this job already has its ports (forbidden)" in (
        done.stderr
    )
    assert "keyhole: no forwarded ports for this job; stopping" in done.stderr
    assert len(svc.requests) == 1  # a refusal is not retried


def test_a_service_that_starts_late_is_reached_by_retrying(tmp_path: Path, service: FakeService) -> None:
    # the first URL is a port nobody listens on; the second listens only once the client has retried
    path = _script(tmp_path, ["http://127.0.0.1:9", service.url], initial_delay=0.05)
    with subprocess.Popen(
        ["bash", str(path)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        retries = 0
        while retries < 2:  # both URLs failed at least once
            line = proc.stderr.readline()
            assert line, "client exited before retrying"
            if "retrying in" in line:
                retries += 1
        service.start()
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout == EXPECTED
    assert len(service.requests) == 1


def test_giving_up_is_logged_and_stops_the_script(tmp_path: Path, service: FakeService) -> None:
    path = _script(tmp_path, [service.url], initial_delay=0.05, deadline_seconds=0.5)
    done = subprocess.run(["bash", str(path)], env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert done.stdout == "before\n"
    assert "keyhole: gave up after 0.5s" in done.stderr
    assert service.requests == []
