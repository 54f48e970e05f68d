"""Fixtures for the containerised cluster: one real cluster per test session, shared by every tier that uses it.

Loaded as a plugin by ``tests/conftest.py`` (not a ``tests/e2e`` conftest), so the e2e tests and the testbed
side of ``tests/contract`` share the same session ``testbed`` instead of each starting its own.

``testbed`` starts a small cluster (1 controller, 2 compute, 1 command, 2 gateways, 1 etcd, a client on
the public network) once per session and removes it, by label, whatever happens. Without a Docker engine
the tier is skipped on a developer's machine, but fails in CI (``CI=true``), where Docker must be there.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from containers.cleanup import remove_stale
from containers.testbed import Testbed, TestbedSpec

# A testbed older than this was left by a killed run (no test session lasts this long).
STALE_AFTER_SECONDS = 3 * 3600


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Docker answers, or the tier fails in CI and is skipped elsewhere."""
    if _docker_answers():
        return
    message = "no Docker engine answers `docker info` (scripts/setup-docker starts one)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"e2e tests need Docker in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def testbed(docker_engine: None) -> Iterator[Testbed]:
    """A ready cluster shared by the whole session; removed afterwards even when tests fail."""
    remove_stale(STALE_AFTER_SECONDS)
    bed = Testbed(TestbedSpec(compute=2, gateways=2, command=1, etcd_members=1, client=True))
    with bed:
        yield bed
