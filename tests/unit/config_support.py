"""What the settings tests share: an environment no RUNNER_* variable from outside leaks into."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNNER_* variable from outside leaks in; the install dir is an empty temporary one."""
    for name in list(os.environ):
        if name.upper().startswith("RUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNNER_INSTALL_DIR", str(tmp_path / "install" / "bin"))
