"""What the settings tests share: an environment no RUNNER_* variable from outside leaks into, and bwVisu's config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNNER_* variable from outside leaks in; the install dir is an empty temporary one."""
    for name in list(os.environ):
        if name.upper().startswith("RUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNNER_INSTALL_DIR", str(tmp_path / "install" / "bin"))


# The shape of bwVisu's published config.json, hyphenated keys and all.
BWVISU_CONFIG: dict[str, Any] = {
    "bwvisu-home-prefix": "/home/bwvisu",
    "gateway-nodes": [
        {"internal-ip": "10.0.0.10", "external-ip": "193.196.1.10", "user": "runner", "port": 22},
        {"internal-ip": "10.0.0.11", "external-ip": "193.196.1.11", "user": "runner", "port": 2222},
    ],
    "command-nodes": [{"ip": "10.0.0.2", "user": "runner", "port": 22}, {"ip": "10.0.0.3", "user": "runner"}],
    "keyholed-servers": [{"ip": "10.0.0.5", "port": 4243}],
    "keyholed-port-range": {"min": 51000, "max": 52000},
    "keyholed-max-forwarders-per-job": 2,
    "etcd-servers": [{"ip": "10.0.0.6", "port": 2379}],
    "debug": {"keyholed-static-forwarding": 55555},
    "forwarding-hostname-suffix": "-ib0",
}
