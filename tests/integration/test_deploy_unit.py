"""The shipped systemd unit as systemd reads it: it verifies cleanly (no unknown key, no bad value, its units and
command found) and ``systemd-analyze security`` rates it at most :data:`MAX_EXPOSURE`, with each hardening option the
admin page promises in force. Running its ``ExecStart`` in the runner image is an e2e test
(``tests/e2e/test_runner_service.py``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy_unit import UNIT, exec_start, need_systemd_analyze, service_section

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MAX_EXPOSURE = "1.5"
# What the security review must see as done (its ✓ lines), one per promise of deploy/README.md.
IN_FORCE = [
    "User=/DynamicUser=",
    "NoNewPrivileges=",
    "ProtectSystem=",
    "ProtectHome=",
    "PrivateTmp=",
    "PrivateDevices=",
    "CapabilityBoundingSet=~CAP_SYS_ADMIN",
    "CapabilityBoundingSet=~CAP_NET_ADMIN",
    "RestrictAddressFamilies=~AF_PACKET",
    "RestrictAddressFamilies=~AF_NETLINK",
    "SystemCallFilter=~@privileged",
    "SystemCallFilter=~@mount",
    "RestrictSUIDSGID=",
    "AmbientCapabilities=",
]


def verify_root(tmp_path: Path) -> Path:
    """A file system root for ``verify --root``: the host's systemd units, the unit, and its ExecStart command."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    command = root / exec_start()[0].lstrip("/")
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    return root


def test_the_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    analyze = need_systemd_analyze()
    root = verify_root(tmp_path)
    done = subprocess.run(
        [analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


def test_the_unit_is_rated_well_hardened_with_every_promised_option_in_force() -> None:
    analyze = need_systemd_analyze()
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert exposure, done.stdout
    assert float(exposure.group(1)) <= float(MAX_EXPOSURE), done.stdout
    passed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("✓")}
    assert [option for option in IN_FORCE if option not in passed] == []


def test_it_runs_the_runner_as_its_own_user_reading_config_and_keys_read_only() -> None:
    service = service_section()
    assert service["User"] == ["bwvisu-runner"]
    assert exec_start()[1:] == ["-m", "runner", "serve", "--config", "/etc/runner/config.json"]
    assert service["ReadOnlyPaths"] == ["/etc/runner"]
    assert service["CapabilityBoundingSet"] == [""]
