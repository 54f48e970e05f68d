"""``bwvisu-testbed up``, ``status``, ``down`` as a developer runs them: a small cluster with a runner attached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from containers import runner_process
from containers.cleanup import list_runs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def bwvisu_testbed(state: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BWVISU_TESTBED_STATE": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "containers.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def state_root(docker_engine: None, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for state in tmp_path.iterdir():  # whatever a failed test left: its runner and its containers
        if state.is_dir() and not state.name.startswith("starting-"):
            bwvisu_testbed(tmp_path, "down", state.name, timeout=120)


def test_up_status_down(state_root: Path) -> None:
    up = bwvisu_testbed(state_root, "up", "--compute", "1", "--gateways", "1")
    assert up.returncode == 0, up.stdout + up.stderr
    run_id = re.search(r"^testbed (\S+) is up", up.stdout, re.MULTILINE)
    assert run_id, up.stdout
    run = run_id.group(1)
    state = state_root / run
    info = runner_process.info(state)
    assert info is not None
    assert f"runner:       {info.url}" in up.stdout
    assert f"credentials:  {info.user} / {info.password}" in up.stdout
    assert f"curl -u '{info.user}:{info.password}' {info.url}/jobs" in up.stdout
    assert runner_process.answers(info)

    status = bwvisu_testbed(state_root, "status")
    assert status.returncode == 0, status.stderr
    assert f"runner pid {info.pid} running, {info.url} answering" in status.stdout

    down = bwvisu_testbed(state_root, "down", run, timeout=120)
    assert down.returncode == 0, down.stderr
    assert f"stopped runner pid {info.pid}" in down.stdout
    assert not runner_process.alive(info.pid)
    assert run not in list_runs()
    assert not state.exists()
