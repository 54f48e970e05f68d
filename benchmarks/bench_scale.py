"""Issue 14: the real cluster at scale. Hundreds of jobs through a runner container, each reached through its forward.

A testbed with many real Slurm nodes (several slurmd per container) and gateways starts, and its runner runs in
its own container on the cluster network (:mod:`containers.scale`). First the submission rate at 10 clients,
three ways, with the same script and the same ``sbatch`` command line: through the runner's REST API, with a new
real OpenSSH connection per command (baseline) and over one kept-open asyncssh connection (ceiling); plus the cost
of one new OpenSSH connection. Then ``jobs`` listener jobs are submitted through the REST API at once; the
benchmark waits until each is ``available`` (polling ``GET /jobs/<id>`` like a frontend), connects to every job
through its forward from the client container on the public network and checks that the answer names that job;
reads forwards and iptables rules per gateway, the runner's RSS and CPU time, Slurm calls per watcher tick (the
runner's ``/metrics``) and slurmctld's RPC counts (``sdiag``, reset before the burst); then cancels every job and
times until all are ``finished`` and no rule of theirs is left on any gateway.

Every wait is bounded; the testbed (runner container included) is removed by label whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.adapters import Skipped
from benchmarks.common import BenchResult, Figure, closed_loop, ms, percentile
from containers import runner_process, scale, timing
from containers.cleanup import list_runs
from containers.etcd_members import ETCD_PREFIX
from containers.runner_process import RunnerInfo
from containers.testbed import HOME_PREFIX, RUNNER_USER, SLURM_AS, Testbed, TestbedSpec
from runner.config import SshSettings
from runner.slurm.cli import sbatch_argv
from runner.ssh import CHANNEL_OPEN_ATTEMPTS, CHANNEL_RETRY_DELAY

log = logging.getLogger(__name__)

SPREAD_TARGET = 1.05
BASELINE_TARGET = 5.0
CEILING_TARGET = 0.8
UID = "alice"
POLL_S = 0.5
RETRY_AFTER_S = 1.0
STEADY_TICKS = 5
POLL_CONNECTIONS = 8


@dataclass(frozen=True)
class Size:
    jobs: int
    compute: int
    per_host: int
    gateways: int
    submit_clients: int
    rate_clients: int
    rate_jobs: int
    connection_samples: int
    timeout_s: float


FULL = Size(jobs=500, compute=100, per_host=10, gateways=8, submit_clients=100, rate_clients=10, rate_jobs=200,
            connection_samples=20, timeout_s=900)  # fmt: skip
SMOKE = Size(jobs=60, compute=20, per_host=5, gateways=4, submit_clients=30, rate_clients=10, rate_jobs=30,
             connection_samples=5, timeout_s=300)  # fmt: skip


# -- submission rates ---------------------------------------------------------------------------------------------


def _sbatch_command() -> str:
    return shlex.join(sbatch_argv(UID, uuid.uuid4().hex, f"{HOME_PREFIX}/{UID}", SLURM_AS))


async def _openssh(bed: Testbed, command: str, stdin: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *bed.ssh_argv("command1"), command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"ssh {command!r}: exit {proc.returncode}: {err.decode()[-300:]}")


async def connection_cost(bed: Testbed, samples: int) -> float:
    """Median seconds of a new OpenSSH connection that runs ``true`` on the command node."""
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        await _openssh(bed, "true", "")
        took.append(time.perf_counter() - started)
    return statistics.median(took)


async def rates(bed: Testbed, api: httpx.AsyncClient, size: Size) -> dict[str, dict[str, float]]:
    """Submissions per second at ``rate_clients`` clients: runner, baseline (new OpenSSH each), ceiling."""
    clients, total, bound = size.rate_clients, size.rate_jobs, size.timeout_s / 3

    async def through_runner(_: int) -> None:
        body = {"uid": UID, "template-name": scale.TRUE_TEMPLATE, "variables": {}}
        (await api.post("/jobs", json=body)).raise_for_status()

    async def baseline(_: int) -> None:
        await _openssh(bed, _sbatch_command(), scale.TRUE_SCRIPT)

    node = bed.node("command1")
    async with asyncssh.connect(
        "127.0.0.1", node.published_port(22), username=RUNNER_USER, client_keys=[str(bed.ssh_key.private_path)],
        known_hosts=str(bed.known_hosts_path),
    ) as conn:  # fmt: skip
        sessions = asyncio.Semaphore(SshSettings().max_sessions)

        async def ceiling(_: int) -> None:
            # The runner's own limits: its channels per connection, and a refused channel retried (runner.ssh).
            async with sessions:
                for attempt in range(CHANNEL_OPEN_ATTEMPTS):
                    try:
                        await conn.run(_sbatch_command(), input=scale.TRUE_SCRIPT, check=True, timeout=60)
                    except asyncssh.ChannelOpenError:
                        if attempt == CHANNEL_OPEN_ATTEMPTS - 1:
                            raise
                        await asyncio.sleep(CHANNEL_RETRY_DELAY * 2**attempt)
                    else:
                        return

        got = {"ceiling": await closed_loop(clients, total, bound, ceiling)}
    got["runner"] = await closed_loop(clients, total, bound, through_runner)
    got["baseline"] = await closed_loop(clients, total, bound, baseline)
    return {name: result.summary() for name, result in got.items()}


# -- the burst ----------------------------------------------------------------------------------------------------


async def _submit(api: httpx.AsyncClient, deadline: float) -> tuple[str, float]:
    """POST one listener job, retrying a 503 like a frontend until ``deadline``; its id and when it was sent."""
    sent = time.perf_counter()
    body = {"uid": UID, "template-name": scale.LISTENER_TEMPLATE, "variables": {"minutes": "60"}}
    while True:
        response = await api.post("/jobs", json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(RETRY_AFTER_S)
    response.raise_for_status()
    return str(response.json()["job-id"]), sent


async def _states(api: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    async def one(job_id: str) -> dict[str, Any]:
        try:
            response = await api.get(f"/jobs/{job_id}")
        except httpx.TransportError:  # a kept-alive connection the server closed meanwhile: a GET may be repeated
            response = await api.get(f"/jobs/{job_id}")
        response.raise_for_status()
        row: dict[str, Any] = response.json()
        return row

    return dict(zip(ids, await asyncio.gather(*(one(j) for j in ids)), strict=True))


async def wait_state(
    api: httpx.AsyncClient, sent: dict[str, float], state: str, timeout: float, expected: int | None = None
) -> tuple[dict[str, float], dict[str, dict[str, Any]], list[str]]:
    """Poll every job until it is in ``state`` (or ``finished`` before it): job id -> seconds from ``sent``, each
    job's last record, and the jobs that finished without reaching ``state``. ``sent`` may still be filling
    (jobs being submitted): the wait ends when ``expected`` jobs (default: those in ``sent`` now) are settled."""
    done: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    ended: list[str] = []
    total = len(sent) if expected is None else expected
    deadline = time.monotonic() + timeout
    while len(done) + len(ended) < total:
        if time.monotonic() > deadline:
            seen = Counter(str(rows[j]["state"]) for j in sent if j not in done and j in rows)
            raise TimeoutError(f"{total - len(done)} of {total} jobs not {state} after {timeout:.0f} s: {seen}")
        pending = [j for j in list(sent) if j not in done and j not in ended]
        got = await _states(api, pending)
        now = time.perf_counter()
        for job_id, row in got.items():
            rows[job_id] = row
            if row["state"] == state:
                done[job_id] = now - sent[job_id]
            elif row["state"] == "finished":
                ended.append(job_id)
        await asyncio.sleep(POLL_S)
    return done, rows, ended


def diagnose(bed: Testbed, info: RunnerInfo, job_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """What tells why a job ended before it was available: its record, the runner's lines about it, its log."""
    details = row.get("details", {})
    lines = [line for line in runner_process.logs(info, tail=50_000).splitlines() if job_id in line]
    node, slurm_id = str(details.get("node-list", "")), str(details.get("slurm-job-id", ""))
    job_log = ""
    for host in bed.nodes_of("compute"):
        if node in (host.hostname, *host.aliases):
            job_log = host.exec(["tail", "-c", "1500", f"{HOME_PREFIX}/{UID}/bwvisu-job-{slurm_id}.out"]).stdout
    return {"job": job_id, "details": details, "runner_lines": lines[-15:], "job_log": job_log}


def _metric_counts(text: str) -> dict[str, float]:
    """``slurm_calls:<command>`` and ``ticks:<loop>`` from the runner's Prometheus text."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "bwvisu_runner_slurm_calls_total":
                counts[f"slurm_calls:{sample.labels['command']}"] = sample.value
            elif sample.name == "bwvisu_runner_loop_step_seconds_count":
                counts[f"ticks:{sample.labels['loop']}"] = sample.value
            elif sample.name == "bwvisu_runner_loop_step_seconds_sum":
                counts[f"tick_seconds:{sample.labels['loop']}"] = sample.value
    return counts


async def calls_per_tick(api: httpx.AsyncClient, timeout: float) -> dict[str, float]:
    """Slurm commands per job-watcher tick over :data:`STEADY_TICKS` quiet ticks, by command and in all."""
    before = _metric_counts((await api.get("/metrics")).text)
    deadline = time.monotonic() + timeout
    while True:
        after = _metric_counts((await api.get("/metrics")).text)
        ticks = after.get("ticks:job-watcher", 0) - before.get("ticks:job-watcher", 0)
        if ticks >= STEADY_TICKS:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the job watcher did not tick")
        await asyncio.sleep(POLL_S)
    per = {
        key.partition(":")[2]: (after[key] - before.get(key, 0)) / ticks
        for key in after
        if key.startswith("slurm_calls:") and after[key] > before.get(key, 0)
    }
    per["all"] = sum(per.values())
    return per


async def teardown(
    bed: Testbed, api: httpx.AsyncClient, ids: list[str], timeout: float
) -> tuple[float, dict[str, scale.GatewayRules]]:
    """Cancel every job; seconds until all are ``finished`` and no gateway holds a rule of theirs."""
    started = time.perf_counter()
    for response in await asyncio.gather(*(api.delete(f"/jobs/{j}") for j in ids)):
        response.raise_for_status()
    await wait_state(api, dict.fromkeys(ids, started), "finished", timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = await asyncio.to_thread(scale.gateway_rules, bed)
        if not any(r.total for r in left.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"rules left on the gateways after {timeout:.0f} s: {left}")
        await asyncio.sleep(POLL_S)
    return time.perf_counter() - started, left


async def burst(bed: Testbed, info: RunnerInfo, api: httpx.AsyncClient, size: Size) -> dict[str, Any]:
    """The listener jobs, from submission to teardown; everything measured on the way."""
    await asyncio.to_thread(scale.sdiag, bed, True)
    rss_before, cpu_before = await asyncio.to_thread(scale.runner_usage, info)
    metrics_before = _metric_counts((await api.get("/metrics")).text)
    began = time.perf_counter()
    deadline = time.monotonic() + size.timeout_s / 2
    sent: dict[str, float] = {}
    submitted = 0.0
    clients = asyncio.Semaphore(size.submit_clients)

    async def submit_one() -> None:
        async with clients:  # a frontend's request is sent when one of its clients is free
            job_id, at = await _submit(api, deadline)
        sent[job_id] = at

    async def submit_all() -> None:
        nonlocal submitted
        await asyncio.gather(*(submit_one() for _ in range(size.jobs)))
        submitted = time.perf_counter() - began

    # Jobs are polled from their submission on, by a separate frontend client with few connections.
    async with (
        httpx.AsyncClient(
            base_url=str(api.base_url), auth=api.auth, timeout=120, limits=_limits(POLL_CONNECTIONS)
        ) as poller,
        asyncio.TaskGroup() as group,  # inside the client: its tasks end before the client closes
    ):
        group.create_task(submit_all())
        waited = group.create_task(wait_state(poller, sent, "available", size.timeout_s, expected=size.jobs))
    delays, rows, ended = waited.result()
    all_available = time.perf_counter() - began
    metrics_after = _metric_counts((await api.get("/metrics")).text)
    if ended:
        log.warning("%d jobs finished before they were available, e.g. %s", len(ended), ended[0])
    failed = [await asyncio.to_thread(diagnose, bed, info, j, rows[j]) for j in ended[:3]]
    up = [j for j in sent if j in delays]
    targets = [(str(rows[j]["services"][0]["external-ip"]), int(rows[j]["services"][0]["external-port"])) for j in up]
    answers = await asyncio.to_thread(scale.reach_all, bed, targets)
    rss, cpu_after = await asyncio.to_thread(scale.runner_usage, info)
    expected = [scale.expected_answer(j, str(rows[j]["details"]["slurm-job-id"])) for j in up]
    wrong = [(j, want, got) for j, want, got in zip(up, expected, answers, strict=True) if want != got]
    per_call = await calls_per_tick(api, size.timeout_s / 4)
    rpcs = await asyncio.to_thread(scale.sdiag, bed)
    rules = await asyncio.to_thread(scale.gateway_rules, bed)
    public_to_host = {ep.public_ip: ep.hostname for ep in bed.endpoints.gateways}
    forwards = Counter(public_to_host[ip] for ip, _ in targets)
    nodes = Counter(str(rows[j]["details"].get("node-list")) for j in up)
    took, left = await teardown(bed, api, up, size.timeout_s / 2)
    order = sorted(up, key=sent.__getitem__)
    return {
        "jobs": len(sent),
        "submitted_s": submitted,
        "burst_metrics": {k: metrics_after[k] - metrics_before.get(k, 0) for k in metrics_after},
        "all_available_s": all_available,
        "delays": [delays[j] for j in order],
        "failed": len(ended),
        "failed_examples": failed,
        "reached": len(answers) - len(wrong),
        "wrong": wrong[:10],
        "distinct_answers": len(set(answers)),
        "nodes_used": len(nodes),
        "jobs_per_node_max": max(nodes.values()),
        "forwards": {g.hostname: forwards.get(g.hostname, 0) for g in bed.nodes_of("gateway")},
        "rules": {name: {"dnat": r.dnat, "total": r.total} for name, r in rules.items()},
        "rules_after_teardown": {name: r.total for name, r in left.items()},
        "runner_rss_bytes": max(rss, rss_before),
        "runner_cpu_s": cpu_after - cpu_before,
        "calls_per_tick": per_call,
        "sdiag": rpcs,
        "teardown_s": took,
    }


# -- the section --------------------------------------------------------------------------------------------------


def _limits(connections: int) -> httpx.Limits:
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so none is reused as it closes.
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2)


def spec_for(size: Size) -> TestbedSpec:
    return TestbedSpec(compute=size.compute, slurmd_per_host=size.per_host, gateways=size.gateways, command=1,
                       etcd_members=1, client=True)  # fmt: skip


async def run(size: Size) -> dict[str, Any]:
    """Start the testbed and its runner, measure rates and the burst, remove everything; the raw series."""
    t0 = time.perf_counter()
    bed = Testbed(spec_for(size), progress=lambda msg: None)
    state = Path(tempfile.mkdtemp(prefix="bwvisu-scale-"))
    series: dict[str, Any] = {"size": vars(size)}
    try:
        await asyncio.to_thread(bed.start)
        series["start_to_ready_s"] = time.perf_counter() - t0
        info = await asyncio.to_thread(
            scale.start_runner, bed, state, prefix=f"{ETCD_PREFIX}/scale-{uuid.uuid4().hex[:8]}"
        )
        async with httpx.AsyncClient(
            base_url=info.url, auth=(info.user, info.password), timeout=120, limits=_limits(size.submit_clients)
        ) as api:
            series["connection_s"] = await connection_cost(bed, size.connection_samples)
            series["rates"] = await rates(bed, api, size)
            series |= await burst(bed, info, api, size)
    except BaseException:
        recorded = runner_process.info(state)
        if recorded is not None:
            log.exception("the scale run failed; the runner's last log lines:\n%s", runner_process.logs(recorded, 40))
        raise
    finally:
        t1 = time.perf_counter()
        await asyncio.to_thread(runner_process.stop, state)
        await asyncio.to_thread(bed.stop)
        shutil.rmtree(state, ignore_errors=True)
        series["testbed_stop_s"] = time.perf_counter() - t1
        series["left_running"] = bed.run_id in await asyncio.to_thread(list_runs)
    return series


def figures(series: dict[str, Any]) -> list[Figure]:
    """The section's figures, each beside its target where the issue sets one."""
    jobs, size = series["jobs"], series["size"]
    params = {"jobs": jobs, "nodes": size["compute"], "gateways": size["gateways"]}
    delays: list[float] = series["delays"]
    loads = list(series["forwards"].values())
    spread = max(loads) / (sum(loads) / len(loads))
    rules = [r["total"] for r in series["rules"].values()]
    rate = {k: v["per_second"] for k, v in series["rates"].items()}
    rate_params = {"clients": size["rate_clients"], "jobs": size["rate_jobs"]}
    burst = series["burst_metrics"]
    ticks = burst.get("ticks:job-watcher", 0)
    tick_mean = burst.get("tick_seconds:job-watcher", 0) / ticks if ticks else float("nan")
    vs_base = rate["runner"] / rate["baseline"] if rate["baseline"] else float("nan")
    vs_ceiling = rate["runner"] / rate["ceiling"] if rate["ceiling"] else float("nan")
    return [
        Figure("scale.start_to_ready_s", round(series["start_to_ready_s"], 1), "s", params),
        Figure("scale.submit_to_available_p50_s", round(percentile(delays, 0.5), 2), "s", params),
        Figure("scale.submit_to_available_p99_s", round(percentile(delays, 0.99), 2), "s", params),
        Figure("scale.submit_to_available_max_s", round(max(delays), 2), "s", params),
        Figure("scale.all_available_s", round(series["all_available_s"], 1), "s", params),
        Figure("scale.nodes_used", series["nodes_used"], "nodes", params,
               note=f"Slurm nodes running the jobs, at most {series['jobs_per_node_max']} each"),
        Figure("scale.jobs_failed", series["failed"], "jobs", params, "= 0", series["failed"] == 0,
               "ended before they were available (the first ones' records, runner lines and logs: the series)"),
        Figure("scale.jobs_reached", series["reached"], "jobs", params, f"= {jobs}", series["reached"] == jobs,
               "each through its own forward from the public client, answering with its own job's names"),
        Figure("scale.forwards_max_over_mean", round(spread, 3), "x", params, f"<= {SPREAD_TARGET}",
               spread <= SPREAD_TARGET, f"forwards per gateway {sorted(loads, reverse=True)}"),
        Figure("scale.iptables_rules_per_gateway_max", max(rules), "rules", params,
               note="the runner's rules (DNAT and its MASQUERADE) on the fullest gateway"),
        Figure("scale.runner_rss_mib", round(series["runner_rss_bytes"] / 2**20, 1), "MiB", params),
        Figure("scale.runner_cpu_ms_per_job", ms(series["runner_cpu_s"] / jobs), "ms", params,
               note="the runner process from the first submission until all were reached, frontend polls included"),
        Figure("scale.slurm_calls_per_watcher_tick", round(series["calls_per_tick"]["all"], 2), "calls", params,
               note=", ".join(f"{k} {v:.2f}" for k, v in sorted(series["calls_per_tick"].items()) if k != "all")),
        Figure("scale.burst_watcher_tick_mean_s", round(tick_mean, 2), "s", params,
               note="job-watcher ticks from the first submission until all were available; Slurm calls then: "
               + ", ".join(f"{k.partition(':')[2]} {v:g}" for k, v in sorted(burst.items()) if k.startswith("slurm_"))),
        Figure("scale.slurmctld_rpcs", sum(series["sdiag"].values()), "RPCs", params,
               note=", ".join(f"{k} {v}" for k, v in sorted(series["sdiag"].items(), key=lambda kv: -kv[1])[:6])),
        Figure("scale.teardown_s", round(series["teardown_s"], 1), "s", params,
               note="DELETE every job until all finished and no rule of theirs left on any gateway"),
        Figure("scale.testbed_stop_s", round(series["testbed_stop_s"], 1), "s", params),
        Figure("scale.openssh_connection_ms", ms(series["connection_s"]), "ms", {},
               note="a new OpenSSH connection running `true` on the command node (median)"),
        Figure("scale.rate_runner_per_s", rate["runner"], "jobs/s", rate_params),
        Figure("scale.rate_baseline_per_s", rate["baseline"], "jobs/s", rate_params,
               note="a new OpenSSH connection per sbatch"),
        Figure("scale.rate_ceiling_per_s", rate["ceiling"], "jobs/s", rate_params,
               note="sbatch over one kept-open asyncssh connection"),
        Figure("scale.runner_vs_baseline", round(vs_base, 2), "x", rate_params, f">= {BASELINE_TARGET:g}",
               vs_base >= BASELINE_TARGET),
        Figure("scale.runner_vs_ceiling", round(vs_ceiling, 2), "x", rate_params, f">= {CEILING_TARGET:g}",
               vs_ceiling >= CEILING_TARGET),
    ]  # fmt: skip


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


async def bench(smoke: bool) -> BenchResult:
    """The ``scale`` section of ``python -m benchmarks``: skipped without Docker or, in smoke size, without images."""
    if not await asyncio.to_thread(_docker_answers):
        raise Skipped("the Docker engine does not answer `docker info` (scripts/setup-docker starts one)")
    if smoke and not await asyncio.to_thread(timing.images_current):
        raise Skipped("the testbed images are not built or not current (bwvisu-testbed build)")
    series = await run(SMOKE if smoke else FULL)
    return BenchResult(figures=figures(series), series={"scale": series})


if __name__ == "__main__":
    import argparse
    import json
    from dataclasses import asdict

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="60 jobs, 20 nodes, 4 gateways")
    result = asyncio.run(bench(parser.parse_args().smoke))
    print(json.dumps([asdict(f) for f in result.figures], indent=1))
