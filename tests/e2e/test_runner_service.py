"""The shipped systemd unit's command line, run in the runner image as the unit's user on the testbed: the runner
starts from the unit's ``--config`` with the keys beside it, answers on its published API, and stops on SIGTERM
(what systemd and Docker send first) before the grace period's SIGKILL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from containers import runner_process
from containers.etcd_members import ETCD_PREFIX
from containers.testbed import Testbed
from tests.deploy_unit import exec_start, service_section
from tests.e2e.e2e_support import exec_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def service(testbed: Testbed, tmp_path: Path) -> Iterator[runner_process.RunnerInfo]:
    [user] = service_section()["User"]
    started = runner_process.start(
        testbed, tmp_path, prefix=f"{ETCD_PREFIX}/e2e-{testbed.run_id}-service", command=exec_start(), user=user
    )
    try:
        yield started
    finally:
        runner_process.stop(tmp_path)


def test_the_units_exec_start_serves_in_the_image_as_its_user(service: runner_process.RunnerInfo) -> None:
    runner_process.wait_ready(service, timeout=60)
    [user] = service_section()["User"]
    code, out = exec_in(service.container, ["id", "-un"])
    assert (code, out.strip()) == (0, user)
    client = docker.from_env()
    try:
        container = client.containers.get(service.container)
        assert container.attrs["Config"]["Entrypoint"][-1] == exec_start()[0]
        container.stop(timeout=runner_process.STOP_TIMEOUT_S)
        container.reload()
        # SIGTERM (docker stop) shuts it down in order: exit 0, not killed at the deadline
        assert container.attrs["State"]["ExitCode"] == 0, runner_process.logs(service)
        assert "runner stopped (SIGTERM)" in runner_process.logs(service)
    finally:
        client.close()
