"""PNG plots of a suite run (matplotlib, Agg backend): one function per plot, each drawn from a result series.

Every function returns the file it wrote, or None when the run has no data for it (a section skipped
or left out with ``--only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

VARIANTS = (("runner", "runner (REST, shared SSH)"), ("ceiling", "ceiling (bare asyncssh)"), ("baseline", "baseline"))


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def throughput(submit: dict[str, Any], out: Path) -> Path | None:
    if not submit:
        return None
    levels = sorted(int(k) for k in submit)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in VARIANTS:
        ax.plot(levels, [submit[str(n)][key]["per_second"] for n in levels], marker="o", label=label)
    ax.set(xscale="log", xlabel="concurrent clients", ylabel="jobs/s", title="Submission throughput")
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "throughput_vs_concurrency.png")


def latency(submit: dict[str, Any], status: dict[str, Any], out: Path) -> Path | None:
    if not submit and not status:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    if submit:
        levels = sorted(int(k) for k in submit)
        for key, label in VARIANTS:
            for q, style in (("p50", "-"), ("p99", "--")):
                values = [submit[str(n)][key][f"{q}_ms"] for n in levels]
                left.plot(levels, values, style, marker="o", label=f"{label} {q}")
        left.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="POST /jobs latency")
        left.set_xticks(levels, [str(n) for n in levels])
        left.legend(fontsize=7)
        left.grid(alpha=0.3)
    if status:
        sizes = sorted(int(k) for k in status)
        for key, label in (("get", "GET /jobs/<id>"), ("list", "GET /jobs")):
            for q, style in (("p50", "-"), ("p99", "--")):
                right.plot(
                    sizes, [status[str(n)][f"{key}_{q}_ms"] for n in sizes], style, marker="o", label=f"{label} {q}"
                )
        right.set(xscale="log", yscale="log", xlabel="jobs stored", ylabel="ms", title="Status latency")
        right.legend(fontsize=7)
        right.grid(alpha=0.3)
    return _save(fig, out / "latency_percentiles.png")


def watcher(series: dict[str, Any], out: Path) -> Path | None:
    rows = {int(k): v for k, v in series.items() if k.isdigit()}
    if not rows:
        return None
    sizes = sorted(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(sizes, [rows[n]["steady_cpu_ms"] for n in sizes], marker="o", label="steady tick CPU (ms)")
    left.plot(sizes, [rows[n]["transition_cpu_ms"] for n in sizes], marker="s", label="transition tick CPU (ms)")
    ideal = [rows[sizes[0]]["steady_cpu_ms"] * n / sizes[0] for n in sizes]
    left.plot(sizes, ideal, ":", color="grey", label="linear from smallest")
    left.set(xscale="log", yscale="log", xlabel="active jobs", ylabel="ms", title="Watcher CPU per tick")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.plot(sizes, [rows[n]["squeue_bytes"] / 1024 for n in sizes], marker="o", label="squeue KiB parsed")
    right.plot(sizes, [rows[n]["calls"] for n in sizes], marker="s", label="Slurm calls per tick")
    right.set(xscale="log", yscale="log", xlabel="active jobs", title="Watcher Slurm traffic per tick")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    return _save(fig, out / "watcher_cost.png")


def gateways(series: dict[str, Any], out: Path) -> Path | None:
    spreads = {k: v for k, v in series.items() if k.startswith("spread-") and v}
    if not spreads:
        return None
    fig, axes = plt.subplots(1, len(spreads), figsize=(6 * len(spreads), 4.5), squeeze=False)
    for ax, (name, loads) in zip(axes[0], sorted(spreads.items(), key=lambda kv: int(kv[0][7:])), strict=True):
        mean = sum(loads) / len(loads)
        ax.bar(range(len(loads)), loads)
        ax.axhline(mean, color="black", linestyle="--", label=f"mean {mean:.1f}")
        ax.axhline(mean * 1.05, color="red", linestyle=":", label="target max (1.05 x mean)")
        ax.set(
            xlabel="gateway (sorted by load)", ylabel="forwards", title=f"{sum(loads)} jobs over {name[7:]} gateways"
        )
        ax.legend(fontsize=8)
    return _save(fig, out / "gateway_distribution.png")


def scale(series: dict[str, Any], out: Path) -> Path | None:
    """Submit-to-available of every job of the real-cluster burst (in submission order) and forwards per gateway."""
    delays = series.get("delays") or []
    forwards = series.get("forwards") or {}
    if not delays or not forwards:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(range(1, len(delays) + 1), delays, ".", markersize=3)
    for q, style in ((0.5, "--"), (0.99, ":")):
        value = sorted(delays)[min(len(delays) - 1, round(q * (len(delays) - 1)))]
        left.axhline(value, color="black", linestyle=style, label=f"p{round(q * 100)} {value:.1f} s")
    left.set(xlabel="job (in submission order)", ylabel="s", title=f"Submit to available, {len(delays)} real jobs")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    names = sorted(forwards, key=lambda name: int("".join(filter(str.isdigit, name)) or 0))
    loads = [forwards[name] for name in names]
    mean = sum(loads) / len(loads)
    right.bar(range(len(loads)), loads, tick_label=[name.removeprefix("gateway") for name in names])
    right.axhline(mean, color="black", linestyle="--", label=f"mean {mean:.1f}")
    right.axhline(mean * 1.05, color="red", linestyle=":", label="target max (1.05 x mean)")
    right.set(xlabel="gateway", ylabel="forwards", title=f"Forwards per gateway ({sum(loads)} jobs)")
    right.legend(fontsize=8)
    return _save(fig, out / "scale_real_cluster.png")
