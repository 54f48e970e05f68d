"""The whole path on the real cluster: the runner (on the host) submits an Xpra job over SSH, the job's keyhole
client asks for a port, the runner forwards it on a gateway, and the public network connects: the real Xpra
client and a real browser (headless chromium on the host) are refused without the job's session secret and
admitted with it (the browser through the ``url`` the API gives).

The runner runs in this process with the testbed's configuration (``Testbed.runner_config``): cluster-network
addresses reached through the Docker bridge, the keyhole service on the host's cluster-network address.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.etcd_members import ETCD_PREFIX
from containers.testbed import Testbed
from runner.app import Runner
from runner.config import ApiSettings, settings_from_mapping
from runner.web.server import ApiServer
from tests.e2e.browser import SENT_BACK, Visit, need_chromium, open_xpra
from tests.e2e.e2e_support import API_AUTH, fetch, ok, port_open_from, runner_settings
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

XPRA_VARIABLES = {
    "expected_runtime_in_minutes": "15",
    "number_of_nodes": "1",
    "tasks_per_node": "1",
    "image_name": "ubuntu_nemo.simg",
}


async def visit(url: str, screenshot: Path) -> Visit:
    """Open ``url`` as a user would; a client page stuck half-way (seen on a loaded machine) is loaded again."""
    for _ in range(3):
        seen = await open_xpra(url, screenshot)
        if seen.in_session or seen.disconnect_reason:
            return seen
    return seen


def xpra_client(testbed: Testbed, verb: str, address: str, password: str | None = None) -> tuple[int, str]:
    """The real Xpra client on the public network (``xpra id``/``info``), with the password in a 0600 file."""
    client = testbed.node("client")
    argv = ["xpra", verb, f"tcp://{address}/"]
    if password is not None:
        ok(client.exec(["sh", "-c", "umask 077 && cat >/tmp/session-password"], user="alice", stdin=password))
        argv.insert(2, "--password-file=/tmp/session-password")
    done = client.exec(argv, user="alice")
    return done.exit_code, done.stdout + done.stderr


async def test_xpra_job_admits_only_the_holder_of_its_session_secret_then_is_cancelled(
    testbed: Testbed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    need_chromium()
    caplog.set_level(logging.DEBUG)
    settings = settings_from_mapping(runner_settings(testbed, f"{ETCD_PREFIX}/e2e-{testbed.run_id}-xpra"))
    async with (
        Runner(settings) as started,
        ApiServer(started.app, ApiSettings(host="127.0.0.1", port=0)) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=60, trust_env=False) as api,
    ):
        t0 = asyncio.get_running_loop().time()
        response = await api.post(
            "/jobs", json={"uid": "alice", "template-name": "template_xpra.txt", "variables": XPRA_VARIABLES}
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["job-id"]
        body: dict[str, Any] = {}

        async def available() -> bool:
            nonlocal body
            body = (await api.get(f"/jobs/{job_id}")).json()
            return bool(body["state"] == "available")

        await wait_until(available, 120, "job never became available")
        print(f"submit-to-available (authenticated Xpra): {asyncio.get_running_loop().time() - t0:.1f} s")
        [service] = body["services"]
        password = service["password"]
        assert password
        token = await started.store.get_token(job_id)
        assert token
        host, port = service["external-ip"], service["external-port"]
        assert service["url"] == f"http://{host}:{port}/?password={password}"
        gateway = next(g for g in testbed.endpoints.gateways if g.public_ip == host)
        status, page = await asyncio.to_thread(fetch, testbed, f"http://{host}:{port}/")
        assert status == 200  # the client's static page is public; the session behind it is not
        assert "Xpra" in page

        async def xpra_ready() -> bool:  # "available" means the port accepts; Xpra is ready a moment later
            return await asyncio.to_thread(fetch, testbed, f"http://{host}:{port}/Status") == (200, "ready")

        await wait_until(xpra_ready, 30, "Xpra never said it was ready")

        # a browser on the public network: the HTML5 client without the password gets no session ...
        stranger = await visit(f"http://{host}:{port}/", tmp_path / "without-password.png")
        assert not stranger.in_session
        assert stranger.disconnect_reason == "No password specified for authentication challenge", stranger
        guesser = await visit(f"http://{host}:{port}/?password=guess", tmp_path / "wrong-password.png")
        assert not guesser.in_session
        assert guesser.disconnect_reason == "authentication failed", guesser
        # ... and the API's url lands in it: the xterm window is drawn
        user = await visit(service["url"], tmp_path / "with-url.png")
        assert user.in_session, user
        assert SENT_BACK not in user.final_url
        assert user.window_title is not None
        assert user.window_title == "xterm" or user.window_title.startswith("alice@")
        assert user.screenshot.read_bytes() != stranger.screenshot.read_bytes()

        # the real Xpra client from the public network: refused without the password, admitted with it
        for verb in ("id", "info"):
            code, text = await asyncio.to_thread(xpra_client, testbed, verb, f"{host}:{port}")
            assert code == 3, text  # EXIT_PASSWORD_REQUIRED
            assert "authentication required" in text
            code, text = await asyncio.to_thread(xpra_client, testbed, verb, f"{host}:{port}", password[:-1] + "x")
            assert code != 0, text
            assert "authentication failed" in text
        code, text = await asyncio.to_thread(xpra_client, testbed, "id", f"{host}:{port}", password)
        assert code == 0, text
        assert "session-name=" in text

        cancelled = await api.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200, cancelled.text

        async def rule_gone() -> bool:
            rules = await asyncio.to_thread(testbed.node(gateway.hostname).exec, ["iptables-save", "-t", "nat"])
            return rules.ok and f"--dport {port}" not in rules.stdout

        await wait_until(rule_gone, 60, f"forward :{port} still on {gateway.hostname}")
        assert not await asyncio.to_thread(port_open_from, testbed, "client", host, port)
        finished = (await api.get(f"/jobs/{job_id}")).json()
        assert all(s["password"] is None for s in finished["services"])
    # every log line of the run, every library at DEBUG (the test's own HTTP clients aside): no secret in any
    runner_side = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(job_id in line for line in runner_side)
    key_lines = [ln for ln in testbed.ssh_key.private_path.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    etcd = settings.etcd
    assert etcd.password is not None
    assert etcd.key_file is not None
    secrets = {"session secret": password, "job token": token, "API password": API_AUTH[1]}
    secrets["etcd password"] = etcd.password.get_secret_value()
    key_lines += [ln for ln in etcd.key_file.read_text().splitlines() if ln and "PRIVATE KEY" not in ln]
    secrets |= {f"private key line {i}": line for i, line in enumerate(key_lines)}
    leaked = {name for name, secret in secrets.items() for line in runner_side if secret in line}
    assert not leaked
