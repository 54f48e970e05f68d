"""``python -m benchmarks [--smoke] [--only NAME ...] [--out DIR]``: every benchmark, one table, JSON and plots.

Sections (issue 6's items): ``submit`` (1), ``status`` (2), ``watcher`` (3 and the memory figures, 7),
``keyhole`` (readiness, 4; gateways at scale, 5), ``iptables`` (raw rule install time, 5), ``simulator``
(the simulated cluster's own cost), ``events`` (pushed job state: 1,000 open streams), ``containers``
(6: only with Docker) and ``scale`` (issue 14: 500 real jobs on 100 real Slurm nodes and 8 gateways, only with
Docker). A section that cannot run is listed as skipped with the reason; one that fails is
listed as failed and the others still run. Results go to ``DIR/results.json`` and ``DIR/*.png`` (default
``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks import adapters, bench_events, bench_scale, bench_status, bench_submit, bench_watcher, plots
from benchmarks.common import BenchResult, raised_file_limit

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


async def _submit(smoke: bool) -> BenchResult:
    return await bench_submit.bench(bench_submit.SMOKE if smoke else bench_submit.FULL)


async def _status(smoke: bool) -> BenchResult:
    return await bench_status.bench(bench_status.SMOKE if smoke else bench_status.FULL)


async def _events(smoke: bool) -> BenchResult:
    return await bench_events.bench(bench_events.SMOKE if smoke else bench_events.FULL)


async def _watcher(smoke: bool) -> BenchResult:
    return await bench_watcher.bench(bench_watcher.SMOKE if smoke else bench_watcher.FULL)


SECTIONS: dict[str, Callable[[bool], Awaitable[BenchResult]]] = {
    "submit": _submit,
    "status": _status,
    "watcher": _watcher,
    "events": _events,
    "keyhole": adapters.keyhole,
    "iptables": adapters.iptables,
    "simulator": adapters.simulator,
    "containers": adapters.containers,
    "scale": bench_scale.bench,
}


async def run(names: list[str], smoke: bool) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        entry: dict[str, Any]
        try:
            got = await SECTIONS[name](smoke)
            entry = {"status": "ok", "figures": [asdict(f) for f in got.figures], "series": got.series}
        except adapters.Skipped as exc:
            entry = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:
            traceback.print_exc()
            entry = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        sections[name] = entry
    return sections


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    text = f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"
    return f"{text} {figure['unit']}"


def table(sections: dict[str, Any]) -> str:
    rows = [("figure", "value", "target", "met?")]
    for name, entry in sections.items():
        if entry["status"] != "ok":
            rows.append((f"{name}: {entry['status'].upper()}", entry["reason"][:90], "", ""))
            continue
        for f in entry["figures"]:
            params = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in f["params"].items())
            label = f"{f['name']} [{params}]" if params else f["name"]
            met = "" if f["met"] is None else ("yes" if f["met"] else "NO")
            rows.append((label, _value(f), f["target"], met))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def draw(sections: dict[str, Any], out: Path) -> list[str]:
    def series(name: str) -> dict[str, Any]:
        entry = sections.get(name, {})
        return dict(entry.get("series", {})) if entry.get("status") == "ok" else {}

    drawn = [
        plots.throughput(series("submit"), out),
        plots.latency(series("submit"), series("status"), out),
        plots.watcher(series("watcher"), out),
        plots.gateways(series("keyhole"), out),
        plots.scale(series("scale").get("scale", {}), out),
    ]
    return [p.name for p in drawn if p is not None]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes: checks that everything runs (~1 min)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), metavar="NAME", help="run only these")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    args = parser.parse_args(argv)
    names = args.only or list(SECTIONS)
    # Thousands of simulated forwarders and SSH channels need about a descriptor each.
    started = time.perf_counter()
    with raised_file_limit():
        sections = asyncio.run(run(names, args.smoke))
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "smoke" if args.smoke else "full",
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "system": platform.system()},
        "seconds": round(time.perf_counter() - started, 1),
        "sections": sections,
    }
    report["plots"] = draw(sections, args.out)
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    print(table(sections))
    print(f"\n{report['mode']} run: {report['seconds']} s; results and plots in {args.out}")
    return report


if __name__ == "__main__":
    main()
