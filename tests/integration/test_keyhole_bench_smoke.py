"""The keyhole benchmark runs at smoke size and its figures are in range."""

from __future__ import annotations

import pytest

from benchmarks.bench_keyhole import main_async

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


async def test_smoke_sizes_run(capsys: pytest.CaptureFixture[str]) -> None:
    results = await main_async(64, [0, 50], samples=10, ready_jobs=2, check_samples=2)
    assert results["spread-8"] == 1.0  # 64 jobs over 8 gateways: exactly 8 each
    assert results["spread-32"] == 1.0
    assert results["install-0"] > 0
    assert results["install-50"] > 0
    assert 0 < results["ready-median"] < 5
    assert results["request-seen"] > 0
    assert results["request-unseen"] > 0
    out = capsys.readouterr().out
    assert "max/mean" in out
    assert "listening -> available" in out
    assert "asking squeue" in out
