"""The shipped systemd unit (``deploy/bwvisu-runner.service``) read as systemd reads it, for the tests of both tiers."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "bwvisu-runner.service"


def service_section() -> dict[str, list[str]]:
    """The ``[Service]`` section: every key with all its values (a key may be given more than once)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def exec_start() -> list[str]:
    [line] = service_section()["ExecStart"]
    return shlex.split(line)


def need_systemd_analyze() -> str:
    """The path of ``systemd-analyze``; without it the test is skipped here and fails in CI (bootstrap installs it)."""
    found = shutil.which("systemd-analyze")
    if found is not None:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("systemd-analyze is missing in CI (scripts/bootstrap installs Debian's systemd)")
    pytest.skip("systemd-analyze is missing (Debian's systemd package)")
