"""The simulator benchmark runs at its smoke size and reports sane numbers."""

from __future__ import annotations

import pytest

from benchmarks.bench_simulator import main

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


def test_simulator_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    result = main(["--smoke"])
    assert result.jobs == 300
    assert result.running == 200  # 4 nodes x 50 CPUs
    assert result.pending == 100
    assert result.squeue_lines == 300
    assert result.gateways == 3
    assert result.squeue_p50_ms > 0
    assert '"rss_mb"' in capsys.readouterr().out
