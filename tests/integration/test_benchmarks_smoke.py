"""``python -m benchmarks --smoke`` still runs end to end: every figure in results.json, every plot written.

It checks that the benchmarks run and report, never how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.bench, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
NOT_SCALE = ["submit", "status", "watcher", "events", "keyhole", "iptables", "simulator", "containers"]

FIGURES = {
    "submit": {
        f"submit.{kind}.{metric}"
        for kind in ("runner", "ceiling", "baseline")
        for metric in ("jobs_per_s", "p50_ms", "p99_ms")
    }
    | {"submit.runner_over_ceiling", "submit.runner_over_baseline", "submit.ssh_connect_ms"}
    | {f"submit.etcd_{kind}.{metric}" for kind in ("plain", "tls") for metric in ("jobs_per_s", "p50_ms")}
    | {"submit.etcd_tls_over_plain"},
    "status": {
        "status.get_job.p50_ms",
        "status.get_job.p99_ms",
        "status.list_jobs.p50_ms",
        "status.list_jobs.p99_ms",
        "status.slurm_calls",
    },
    "watcher": {
        "watcher.slurm_calls_per_tick",
        "watcher.squeue_bytes_per_tick",
        "watcher.cpu_ms_per_tick",
        "watcher.transition_cpu_ms",
        "watcher.steady_etcd_full_reads",
        "watcher.keyhole_sweep_cpu_ms",
        "watcher.keyhole_sweep_cpu_per_job_vs_smallest",
        "watcher.cpu_per_job_vs_smallest",
        "memory.runner_rss_mb",
    },
    "events": {
        "events.open_seconds",
        "events.rss_kb_per_stream",
        "events.idle_cpu_us_per_stream_s",
        "events.latency_p50_ms",
        "events.latency_p99_ms",
    },
    "keyhole": {
        "gateways.max_over_mean",
        "gateways.spread_seconds",
        "gateways.install_ms_per_job",
        "gateways.install_vs_empty",
        "readiness.median_s",
        "readiness.p99_s",
        "keyhole.request_ms_watcher_row",
        "keyhole.request_ms_asking_squeue",
        "keyhole.node_check_extra_ms",
    },
    "iptables": {
        "iptables.restore_us_per_rule",
        "iptables.single_append_us",
        "iptables.restore_vs_empty",
        "iptables.single_append_vs_empty",
    },
    "simulator": {
        "simulator.squeue_p50_ms",
        "simulator.squeue_p99_ms",
        "simulator.sbatch_ssh_p50_ms",
        "simulator.rss_mb",
    },
}
PLOTS = {"throughput_vs_concurrency.png", "latency_percentiles.png", "watcher_cost.png", "gateway_distribution.png"}


def test_smoke_run_reports_every_figure_and_plot(tmp_path: Path) -> None:
    done = subprocess.run(
        # ``scale`` (the real cluster at scale) has its own smoke run with its own checks: tests/e2e/test_scale.py.
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path), "--only", *NOT_SCALE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["mode"] == "smoke"
    sections = report["sections"]
    assert set(sections) == {*FIGURES, "containers"}
    for name, expected in FIGURES.items():
        assert sections[name]["status"] == "ok", (name, sections[name].get("reason"))
        figures = sections[name]["figures"]
        assert {f["name"] for f in figures} == expected, name
        assert all(isinstance(f["value"], int | float) for f in figures), name
    assert sections["containers"]["status"] in {"ok", "skipped"}
    # Counts that do not depend on speed: the watcher sends one squeue per tick, the status path none.
    calls = [f["value"] for f in sections["watcher"]["figures"] if f["name"] == "watcher.slurm_calls_per_tick"]
    assert calls == [1, 1]
    assert [f["value"] for f in sections["status"]["figures"] if f["name"] == "status.slurm_calls"] == [0]
    # 200 jobs over 8 gateways: exactly 25 each; over 32: 6 or 7 each
    assert sections["keyhole"]["series"]["spread-8"] == [25] * 8
    assert set(sections["keyhole"]["series"]["spread-32"]) == {6, 7}
    # the smoke cluster: 4 nodes x 50 CPUs run 200 of the 300 jobs, the rest pend, squeue lists all
    sim = sections["simulator"]["series"]["simulator"]
    assert (sim["jobs"], sim["running"], sim["pending"], sim["squeue_lines"], sim["gateways"]) == (
        300,
        200,
        100,
        300,
        3,
    )
    assert set(sections["iptables"]["series"]["iptables"]) == {"0", "100"}
    assert set(report["plots"]) == PLOTS
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = done.stdout
    assert "figure" in table
    assert "submit.runner_over_ceiling" in table
