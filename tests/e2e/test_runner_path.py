"""The whole path on the real cluster: the runner (on the host) submits an Xpra job over SSH, the job's keyhole
client asks for a port, the runner forwards it on a gateway, and the client on the public network connects.

The runner runs in this process with the testbed's configuration (``Testbed.runner_config``): cluster-network
addresses reached through the Docker bridge, the keyhole service on the host's cluster-network address.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import runner
from containers.testbed import Testbed
from runner.app import Runner
from runner.config import settings_from_mapping
from tests.e2e.test_cluster import port_open_from
from tests.e2e.test_xpra import fetch

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

API_AUTH = ("bwvisu-web", "e2e-password")
# The runner's shipped templates, so the shipped Xpra template is the one proven on real Xpra.
TEMPLATES = Path(runner.__file__).parent / "templates"
XPRA_VARIABLES = {
    "expected_runtime_in_minutes": "15",
    "number_of_nodes": "1",
    "tasks_per_node": "1",
    "image_name": "ubuntu_nemo.simg",
}


def free_port_on(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def runner_settings(testbed: Testbed, prefix: str, templates: Path = TEMPLATES) -> dict[str, Any]:
    host_ip = testbed.endpoints.cluster_host_ip
    return {
        **testbed.runner_config(keyhole_ip=host_ip, keyhole_port=free_port_on(host_ip)),
        "etcd_prefix": prefix,
        "templates_dir": str(templates),
        "api": {"user": API_AUTH[0], "password": API_AUTH[1]},
        "ssh": {
            "client_keys": [str(testbed.ssh_key.private_path)],
            "known_hosts": str(testbed.known_hosts_path),
            "command_timeout": 20,
            "connect_timeout": 10,
        },
        "watcher": {"interval": 0.5, "leader_ttl": 3},
    }


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, message: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(message)


async def test_xpra_job_submitted_forwarded_connected_and_cancelled(testbed: Testbed) -> None:
    settings = settings_from_mapping(runner_settings(testbed, f"/e2e-{testbed.run_id}-xpra"))
    async with (
        Runner(settings) as started,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=started.app), base_url="http://runner", auth=API_AUTH, timeout=60
        ) as api,
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

        await wait_for(available, 120, "job never became available")
        print(f"submit-to-available: {asyncio.get_running_loop().time() - t0:.1f} s")
        [service] = body["services"]
        gateway = next(g for g in testbed.endpoints.gateways if g.public_ip == service["external-ip"])
        base = f"http://{service['external-ip']}:{service['external-port']}"
        status, page = await asyncio.to_thread(fetch, testbed, f"{base}/")
        assert status == 200
        assert "Xpra" in page
        assert await asyncio.to_thread(fetch, testbed, f"{base}/Status") == (200, "ready")
        ident = await asyncio.to_thread(
            testbed.node("client").exec, ["xpra", "id", f"tcp://{base.removeprefix('http://')}/"], "alice"
        )
        assert ident.ok, ident.stderr
        assert "session-name=" in ident.stdout

        cancelled = await api.delete(f"/jobs/{job_id}")
        assert cancelled.status_code == 200, cancelled.text
        target = f":{service['external-port']}"

        async def rule_gone() -> bool:
            rules = await asyncio.to_thread(testbed.ssh, gateway.hostname, "sudo -n iptables -t nat -S")
            return rules.ok and f"--dport {service['external-port']}" not in rules.stdout

        await wait_for(rule_gone, 60, f"forward {target} still on {gateway.hostname}")
        assert not await asyncio.to_thread(
            port_open_from, testbed, "client", service["external-ip"], service["external-port"]
        )
