"""The production path (``serve``, the app, the API) loads neither the dev wiring nor the simulator, as a fresh
interpreter importing it shows."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_the_production_path_loads_neither_the_dev_wiring_nor_the_simulator() -> None:
    probe = (
        "import sys, runner.__main__, runner.app, runner.api.app, runner.check, runner.admin\n"
        "print(sorted(m for m in sys.modules if m == 'runner.dev' or m.split('.')[0] == 'simulator'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
