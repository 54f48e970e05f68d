"""The containers benchmark's smoke size still runs on the real cluster and reports every figure.

It checks that the benchmark runs (a small testbed, one Xpra job and a burst of 5 through a runner on the
host, then everything removed), never how fast anything is.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_containers
from containers import timing
from containers.cleanup import list_runs
from containers.testbed import Testbed, TestbedSpec
from containers.timing import start_testbed

pytestmark = [pytest.mark.e2e, pytest.mark.bench, pytest.mark.timeout(180)]

SMOKE_FIGURES = {
    "cached_build",
    "start_to_ready",
    "xpra_submit_to_available",
    "burst5_median",
    "burst5_p99",
    "burst5_all_available",
    "burst5_refused_503_count",
}


async def test_smoke_measure_reports_every_figure_and_leaves_nothing(
    docker_engine: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Testbed] = []

    def spy(spec: TestbedSpec) -> tuple[Testbed, float]:
        bed, seconds = start_testbed(spec)
        started.append(bed)
        return bed, seconds

    monkeypatch.setattr(timing, "start_testbed", spy)
    figures = await bench_containers.measure(smoke=True)
    assert set(figures) == SMOKE_FIGURES
    assert all(math.isfinite(v) and v >= 0 for v in figures.values()), figures
    assert figures["xpra_submit_to_available"] > 0
    assert figures["burst5_median"] <= figures["burst5_p99"] <= figures["burst5_all_available"]
    [bed] = started
    assert bed.run_id not in list_runs()
