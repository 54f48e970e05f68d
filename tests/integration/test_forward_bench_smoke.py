"""The iptables install benchmark runs at smoke size and every installed rule becomes a forwarder."""

from __future__ import annotations

import pytest

from benchmarks.bench_iptables import main_async

pytestmark = [pytest.mark.bench, pytest.mark.timeout(120)]


async def test_smoke_sizes_run(capsys: pytest.CaptureFixture[str]) -> None:
    results = await main_async([0, 50], batch=20, singles=5)
    assert set(results) == {0, 50}
    assert all(per_batch > 0 and per_single > 0 for per_batch, per_single in results.values())
    assert "rules present" in capsys.readouterr().out
