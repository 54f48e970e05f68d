"""Idle sessions on the real cluster: real iptables counts what a client on the public network sends through a
job's forward; that traffic keeps the job, silence cancels it; a cluster user can neither reset the counters nor
move them without going through the forward, and the runner's own account (through the site helper) cannot
zero them either.

Run twice: through the site helper (``bwvisu-forward``, the testbed's default) and with bwVisu's plain
``sudo iptables`` (the ``bwvisu-compat`` account). The counting rules live in the filter table's ``BWVISU-ACCT``.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

import httpx
import pytest

from containers.etcd_members import ETCD_PREFIX
from containers.testbed import COMPAT_USER, FORWARD, Testbed
from runner.app import Runner
from runner.config import ApiSettings, settings_from_mapping
from runner.gateway.iptables import parse_counters
from runner.idle import IDLE_WARNING, LAST_TRAFFIC
from runner.records import CANCEL_REASON
from runner.web.server import ApiServer
from tests.e2e.e2e_support import API_AUTH, ok, runner_settings
from tests.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WEBAPP = {"expected_runtime_in_minutes": "30", "number_of_nodes": "1", "tasks_per_node": "1"}
TIMEOUT_MINUTES, WARNING_MINUTES = 0.25, 0.1  # 15 s of silence cancels; sweeps every 0.75 s
# A client on the public network: connect, send a request, read the answer (any answer: traffic is traffic).
POKE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"GET / HTTP/1.0\\r\\nHost: gateway\\r\\n\\r\\n")
    got = b""
    while len(got) < 4096 and (piece := s.recv(4096)):
        got += piece
print(repr(got[:200]))
"""


ZEROING: tuple[tuple[list[str], str | None], ...] = (
    (["counters", "BWVISU-ACCT", "-Z"], None),
    (["restore"], "*filter\n-Z BWVISU-ACCT\nCOMMIT\n"),
    (["restore"], "*filter\n-A BWVISU-ACCT -c 0 0 -j RETURN\nCOMMIT\n"),
    (["restore"], "*filter\n:BWVISU-ACCT - [0:0]\nCOMMIT\n"),  # a declaration flushes the chain
)


def poke(testbed: Testbed, host: str, port: int) -> str:
    """What the job answered a request from the public network (its first bytes, as a Python literal)."""
    return ok(testbed.node("client").exec(["python3", "-c", POKE, host, str(port)], user="alice")).strip()


def counters(testbed: Testbed, gateway: str) -> dict[str, int]:
    """Job id -> packets of the gateway's counting rules, as root lists them."""
    listed = ok(testbed.node(gateway).exec(["iptables", "-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"]))
    return {c.rule.job_id: c.packets for c in parse_counters(listed)}


def idle_settings(testbed: Testbed, access: str) -> dict[str, Any]:
    data = runner_settings(testbed, f"{ETCD_PREFIX}/e2e-{testbed.run_id}-idle-{access}")
    if access == "compat":
        data["gateway-nodes"] = [{**g, "user": COMPAT_USER} for g in data["gateway-nodes"]]
        data["gateway-helper"] = None
    data["idle_timeout_minutes"] = TIMEOUT_MINUTES
    data["idle_warning_minutes"] = WARNING_MINUTES
    return data


@pytest.mark.parametrize("access", ["helper", "compat"])
async def test_client_traffic_moves_the_counters_and_keeps_the_job_silence_cancels_it(
    testbed: Testbed, access: str
) -> None:
    settings = settings_from_mapping(idle_settings(testbed, access))
    async with (
        Runner(settings) as started,
        ApiServer(started.app, ApiSettings(host="127.0.0.1", port=0)) as server,
        httpx.AsyncClient(base_url=server.url, auth=API_AUTH, timeout=60, trust_env=False) as api,
    ):
        response = await api.post("/jobs", json={"uid": "alice", "template-name": "template_webapp.txt",
                                                 "variables": WEBAPP})  # fmt: skip
        assert response.status_code == 200, response.text
        job_id = response.json()["job-id"]
        body: dict[str, Any] = {}

        async def in_state(*states: str) -> bool:
            nonlocal body
            body = (await api.get(f"/jobs/{job_id}")).json()
            return body["state"] in states

        await wait_until(lambda: in_state("available"), 120, "job never became available")
        [service] = body["services"]
        host, port = service["external-ip"], service["external-port"]
        gateway = next(g.hostname for g in testbed.endpoints.gateways if g.public_ip == host)
        assert counters(testbed, gateway) == {job_id: 0}  # the runner's own readiness probes are not counted

        # a cluster user cannot reset the counters (no root, no sudo for iptables)
        plain = testbed.node(gateway).exec(["iptables", "-t", "filter", "-Z", "BWVISU-ACCT"], user="bob")
        assert (plain.exit_code, "you must be root" in plain.stderr) == (4, True), plain
        sudo = testbed.node(gateway).exec(["sudo", "-n", "iptables", "-t", "filter", "-Z", "BWVISU-ACCT"], user="bob")
        assert (sudo.exit_code, sudo.stderr) == (1, "sudo: a password is required\n")
        # nor can the runner's account through the helper: no request zeroes, restore takes only counting rules
        # (bwVisu's plain sudo iptables could, as it could do anything to any table)
        for request, text in ZEROING if access == "helper" else ():
            refused = testbed.ssh(gateway, shlex.join(["sudo", "-n", FORWARD, *request]), stdin=text)
            assert refused.exit_code in (64, 65), refused
        poked = await asyncio.to_thread(poke, testbed, host, port)
        assert poked.startswith("b'HTTP/1."), poked
        assert counters(testbed, gateway)[job_id] > 0  # nothing above reset it

        # the user works for longer than the timeout: every request moves the counters, the job stays
        loop = asyncio.get_running_loop()
        until, last = loop.time() + 1.5 * TIMEOUT_MINUTES * 60, 0
        while loop.time() < until:
            answered = await asyncio.to_thread(poke, testbed, host, port)
            assert answered.startswith("b'HTTP/1."), answered
            now = counters(testbed, gateway)[job_id]
            assert now > last
            last = now
            sweeps = started.idle[1].iterations if started.idle else 0

            async def swept(target: int = sweeps + 2) -> bool:
                return started.idle is not None and started.idle[1].iterations >= target

            await wait_until(swept, 20, "the idle sweep stopped")
        assert await in_state("available")
        assert LAST_TRAFFIC in body["details"]
        assert IDLE_WARNING not in body["details"]

        # talking to the job's node directly from the cluster, not through the forward, is not traffic
        [forward] = (await started.store.get_job(job_id)).forwards  # type: ignore[union-attr]
        direct = ["nc", "-z", "-w", "2", forward.internal_ip, str(forward.internal_port)]

        async def warned() -> bool:
            testbed.node("compute1").exec(direct, user="bob")
            return await in_state("available") and IDLE_WARNING in body["details"]

        await wait_until(warned, 60, "no idle warning")
        assert counters(testbed, gateway)[job_id] == last
        await wait_until(lambda: in_state("finished"), 120, "the idle job was not cancelled")
        assert "idle: no traffic through its forwards for 0.25 minutes" in body["details"][CANCEL_REASON]
        assert body["details"]["end-reason"].startswith("CANCELLED")

        async def rule_gone() -> bool:
            return job_id not in counters(testbed, gateway)

        await wait_until(rule_gone, 60, "the counting rule outlived the forward")
