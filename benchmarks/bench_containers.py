"""Issue 6, item 6: the real cluster in containers, timed end to end.

Cold image build (throwaway tags, base debootstrap reported apart), cached build (hash checks only), a
testbed from ``start()`` to ready, then a runner on the host (``Runner`` served by ``ApiServer`` on
127.0.0.1) drives it: submit-to-available for one Xpra job (the shipped template, real Xpra 3.1), then a
burst of light web-app jobs submitted at once (median, p99, all done). The runner keeps its default
settings (watcher interval 2 s), as a site would run it.

Every wait is bounded by a deadline; the testbed is removed by label whatever happens, and the cold build
removes only its own throwaway images. Smoke size skips the cold build and uses one compute node, one
gateway and a burst of 5.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import runner
from benchmarks.adapters import Skipped
from benchmarks.common import API_AUTH, LOOPBACK_API, percentile
from containers import timing
from containers.etcd_members import ETCD_PREFIX
from containers.testbed import Testbed, TestbedSpec
from runner.app import Runner
from runner.config import settings_from_mapping
from runner.web.server import ApiServer

log = logging.getLogger(__name__)

TEMPLATES = Path(runner.__file__).parent / "templates"
XPRA = ("template_xpra.txt", {
    "expected_runtime_in_minutes": "30", "number_of_nodes": "1", "tasks_per_node": "1",
    "image_name": "ubuntu_nemo.simg",
})  # fmt: skip
WEBAPP = ("template_webapp.txt", {"expected_runtime_in_minutes": "30", "number_of_nodes": "1", "tasks_per_node": "1"})
POLL_S = 0.1
# A refused submission (503) is retried like a frontend would, bounded in count and by the wait's deadline.
RETRY_AFTER_S = 1.0
MAX_SUBMIT_ATTEMPTS = 120


@dataclass(frozen=True)
class Size:
    cold_build: bool
    spec: TestbedSpec
    burst: int
    xpra_timeout_s: float
    burst_timeout_s: float


# 4 compute nodes advertise 64 CPUs: the whole burst runs at once, none waits in the Slurm queue.
FULL = Size(True, TestbedSpec(compute=4, gateways=2, command=1, etcd_members=1, client=False), 50, 180, 400)
SMOKE = Size(False, TestbedSpec(compute=1, gateways=1, command=1, etcd_members=1, client=False), 5, 120, 180)


def _free_port_on(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def runner_mapping(bed: Testbed) -> dict[str, Any]:
    """The runner's configuration for ``bed``: keyhole on the host's cluster-network address, API on loopback."""
    host_ip = bed.endpoints.cluster_host_ip
    return {
        **bed.runner_config(keyhole_ip=host_ip, keyhole_port=_free_port_on(host_ip)),
        "etcd_prefix": f"{ETCD_PREFIX}/bench-{uuid.uuid4().hex[:8]}",
        "templates_dir": str(TEMPLATES),
        "api": {"host": "127.0.0.1", "port": 0, "user": API_AUTH[0], "password": API_AUTH[1]},
        "ssh": {
            "client_keys": [str(bed.ssh_key.private_path)],
            "known_hosts": str(bed.known_hosts_path),
            "command_timeout": 60,
            "connect_timeout": 20,
        },
    }


async def _submit(
    api: httpx.AsyncClient, template: tuple[str, dict[str, str]], refused: list[int], deadline: float
) -> tuple[str, float]:
    """POST one job as a frontend would, retrying a 503 (scheduler unavailable) until ``deadline``.

    Returns the job's id and when its first request was sent; each 503 is counted in ``refused``.
    """
    sent = time.perf_counter()
    body = {"uid": "alice", "template-name": template[0], "variables": template[1]}
    for _ in range(MAX_SUBMIT_ATTEMPTS):
        response = await api.post("/jobs", json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        refused.append(1)
        await asyncio.sleep(RETRY_AFTER_S)
    response.raise_for_status()
    job_id: str = response.json()["job-id"]
    return job_id, sent


async def _wait_available(api: httpx.AsyncClient, sent: dict[str, float], timeout: float) -> dict[str, float]:
    """Poll every job until available (or the deadline); returns job id -> seconds from its submit."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout

    async def state(job_id: str) -> str:
        response = await api.get(f"/jobs/{job_id}")
        response.raise_for_status()
        return str(response.json()["state"])

    while len(done) < len(sent) and time.monotonic() < deadline:
        pending = [j for j in sent if j not in done]
        states = await asyncio.gather(*(state(j) for j in pending))
        now = time.perf_counter()
        for job_id, got in zip(pending, states, strict=True):
            if got == "available":
                done[job_id] = now - sent[job_id]
            elif got in {"failed", "finished"}:
                raise RuntimeError(f"job {job_id} ended as {got} before it was available")
        await asyncio.sleep(POLL_S)
    if len(done) < len(sent):
        raise TimeoutError(f"{len(sent) - len(done)} of {len(sent)} jobs not available after {timeout:.0f} s")
    return done


async def runner_path(bed: Testbed, burst: int, xpra_timeout: float, burst_timeout: float) -> dict[str, float]:
    """One Xpra job, then ``burst`` web-app jobs at once, through a runner on the host."""
    settings = settings_from_mapping(runner_mapping(bed))
    async with (
        Runner(settings) as started,
        ApiServer(started.app, LOOPBACK_API) as server,
        httpx.AsyncClient(
            base_url=server.url, auth=API_AUTH, timeout=60, limits=httpx.Limits(max_connections=burst + 4)
        ) as api,
    ):
        refused: list[int] = []
        job_id, sent = await _submit(api, XPRA, refused, time.monotonic() + xpra_timeout)
        [xpra] = (await _wait_available(api, {job_id: sent}, xpra_timeout)).values()
        began = time.perf_counter()
        deadline = time.monotonic() + burst_timeout / 2
        sent_at = dict(await asyncio.gather(*(_submit(api, WEBAPP, refused, deadline) for _ in range(burst))))
        delays = await _wait_available(api, sent_at, burst_timeout)
        all_done = max(sent_at[j] + delays[j] for j in delays) - began
    return {
        "xpra_submit_to_available": xpra,
        f"burst{burst}_median": percentile(list(delays.values()), 0.5),
        f"burst{burst}_p99": percentile(list(delays.values()), 0.99),
        f"burst{burst}_all_available": all_done,
        f"burst{burst}_refused_503_count": float(len(refused)),
    }


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


async def measure(smoke: bool) -> dict[str, float]:
    """Figure name -> seconds for the containers section of ``python -m benchmarks``."""
    size = SMOKE if smoke else FULL
    if not await asyncio.to_thread(_docker_answers):
        raise Skipped("the Docker engine does not answer `docker info` (scripts/setup-docker starts one)")
    if smoke and not await asyncio.to_thread(timing.images_current):
        # A smoke run checks that the benchmark runs; building the images would take minutes.
        raise Skipped("the testbed images are not built or not current (bwvisu-testbed build)")
    figures: dict[str, float] = {}
    if size.cold_build:
        cold = await asyncio.to_thread(timing.cold_build)
        figures["cold_build_total"] = cold.total
        figures["cold_build_base_debootstrap"] = cold.debootstrap
        figures["cold_build_base_import"] = cold.base_import
        figures.update({f"cold_build_{role}": seconds for role, seconds in cold.roles.items()})
    figures["cached_build"] = await asyncio.to_thread(timing.cached_build)
    bed, ready = await asyncio.to_thread(timing.start_testbed, size.spec)
    try:
        figures["start_to_ready"] = ready
        figures.update(await runner_path(bed, size.burst, size.xpra_timeout_s, size.burst_timeout_s))
    finally:
        await asyncio.to_thread(bed.stop)
    return figures
