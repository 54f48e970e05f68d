"""Helpers for the keyhole integration tests: a runner serving the real templates, gateway rule listings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

import runner
from runner.app import Runner
from runner.gateway.iptables import ForwardRule, parse_forward_rules, parse_masquerade_rules
from runner.records import JobRecord, submitted_as
from runner.slurm import cli as slurm
from runner.watcher import observed
from simulator import SimCluster
from tests.polling import wait_until

EXAMPLES = Path(runner.__file__).parent / "templates"
WEBAPP_VARIABLES = {"expected_runtime_in_minutes": "60", "number_of_nodes": "1", "tasks_per_node": "1"}


def seen_running(job_id: str, node_list: str, *, uid: str = "alice", slurm_id: str = "900001") -> JobRecord:
    """A record as the job watcher leaves it once squeue showed its Slurm job RUNNING on ``node_list``.

    For tests that exercise the keyhole without a Slurm job behind the record: run them with a quiet job
    watcher (:data:`QUIET_WATCHER`) and create records after :func:`watcher_settled`, or the watcher's next
    squeue would find no such job and end the record.
    """
    row = {
        "slurm-job-id": slurm_id,
        "slurm-state": "RUNNING",
        "job-name": slurm.job_name(job_id),
        "user": uid,
        "nodes": str(len(node_list.split(","))),
        "node-list": node_list,
    }
    record = JobRecord(job_id=job_id, uid=uid, template_name="t.txt", variables={})
    for change in (submitted_as(slurm_id), observed(row)):  # what the runner itself applies
        record = change(record) or record
    return record


SLEEPER = "#!/bin/bash\n#SBATCH --time=600\n#SBATCH --nodes={nodes}\n#SIM-BEHAVIOUR sleep\nsleep 600\n"


async def slurm_running(started: Runner, cluster: SimCluster, job_id: str, *, nodes: int = 1) -> JobRecord:
    """Submit a sleeping Slurm job for ``job_id`` as the runner would, wait until it runs, return its record
    as the watcher would see it (not stored: the caller stores it with the token it wants)."""
    workdir = f"{started.settings.bwvisu_home_prefix}/alice"
    slurm_id = await started.scheduler.submit("alice", job_id, workdir, SLEEPER.format(nodes=nodes))
    job = cluster.scheduler.jobs[int(slurm_id)]

    async def running() -> bool:
        return job.state.value == "RUNNING"

    await wait_until(running, 20, f"Slurm job {slurm_id} never started")
    return seen_running(job_id, ",".join(job.nodes), slurm_id=slurm_id)


QUIET_WATCHER = {"watcher": {"interval": 3600, "leader_ttl": 2}}


async def watcher_settled(*runners: Runner) -> None:
    """Wait for the job watcher's first tick; a quiet watcher then sleeps for an hour."""

    async def ticked() -> bool:
        return any(r.watch_loop.iterations >= 1 for r in runners)

    await wait_until(ticked, 20, "the job watcher never ticked")


async def wait_available(api: httpx.AsyncClient, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll ``GET /jobs/<id>`` until the job is available; its last body."""
    body: dict[str, Any] = {}

    async def available() -> bool:
        nonlocal body
        body = (await api.get(f"/jobs/{job_id}")).json()
        return bool(body["state"] == "available")

    await wait_until(available, timeout, f"job {job_id} never became available: {body}")
    return body


async def gateway_rules(cluster: SimCluster, node: str) -> tuple[list[ForwardRule], list[tuple[str, str, int]]]:
    """The BWVISU DNAT and BWVISU-POST MASQUERADE rules on a gateway, listed as root on it (as an admin would)."""
    service = cluster.gateway_service(node)
    dnat = await service.iptables(["-t", "nat", "-S", "BWVISU"])
    masq = await service.iptables(["-t", "nat", "-S", "BWVISU-POST"])
    return parse_forward_rules(dnat.stdout), parse_masquerade_rules(masq.stdout)


async def all_rules(cluster: SimCluster) -> dict[str, list[ForwardRule]]:
    return {g.node: (await gateway_rules(cluster, g.node))[0] for g in cluster.gateway_nodes}


async def submit(api: httpx.AsyncClient, template: str, variables: dict[str, str]) -> str:
    response = await api.post("/jobs", json={"uid": "alice", "template-name": template, "variables": variables})
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job-id"]
    return job_id
