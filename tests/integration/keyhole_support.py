"""Helpers for the keyhole integration tests: a runner serving the real templates, gateway rule listings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

import runner
from runner.gateway.iptables import ForwardRule, parse_forward_rules, parse_masquerade_rules
from simulator import SimCluster

EXAMPLES = Path(runner.__file__).parent / "templates"
WEBAPP_VARIABLES = {"expected_runtime_in_minutes": "60", "number_of_nodes": "1", "tasks_per_node": "1"}


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, message: str) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(message)


async def gateway_rules(cluster: SimCluster, node: str) -> tuple[list[ForwardRule], list[tuple[str, str, int]]]:
    """The BWVISU DNAT and BWVISU-POST MASQUERADE rules on a gateway, listed over SSH as an admin would."""
    conn = await cluster.connect(node)
    try:
        dnat = await conn.run("sudo -n iptables -t nat -S BWVISU", check=False)
        masq = await conn.run("sudo -n iptables -t nat -S BWVISU-POST", check=False)
    finally:
        conn.close()
        await conn.wait_closed()
    return parse_forward_rules(str(dnat.stdout or "")), parse_masquerade_rules(str(masq.stdout or ""))


async def all_rules(cluster: SimCluster) -> dict[str, list[ForwardRule]]:
    return {g.node: (await gateway_rules(cluster, g.node))[0] for g in cluster.gateway_nodes}


async def submit(api: httpx.AsyncClient, template: str, variables: dict[str, str]) -> str:
    response = await api.post("/jobs", json={"uid": "alice", "template-name": template, "variables": variables})
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job-id"]
    return job_id
