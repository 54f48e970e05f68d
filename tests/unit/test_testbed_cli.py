"""``bwvisu-testbed``'s parts that need no Docker: the attached runner's configuration, its PID bookkeeping,
and the command line's arguments."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from containers import cli, runner_process
from runner.config import settings_from_mapping

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "bwvisu-home-prefix": "/home",
    "command-nodes": [{"ip": "10.9.0.5", "user": "bwvisu", "port": 22}],
    "gateway-nodes": [{"internal-ip": "10.9.0.6", "external-ip": "10.8.0.2", "user": "bwvisu", "port": 22}],
    "keyholed-servers": [{"ip": "10.9.0.1", "port": 4243}],
    "keyholed-port-range": {"min": 50000, "max": 60000},
    "keyholed-max-forwarders-per-job": 4,
    "etcd-servers": [{"ip": "10.9.0.7", "port": 2379}],
    "forwarding-hostname-suffix": "",
}


def make_config(tmp_path: Path) -> dict[str, Any]:
    return runner_process.runner_config(
        BASE,
        key_path=tmp_path / "id_ed25519",
        known_hosts=tmp_path / "known_hosts",
        keyhole_port=45001,
        api_port=45002,
        password="s3cret",
        prefix="/bwvisu-testbed-abc",
    )


def test_runner_config_is_a_valid_runner_configuration_for_the_testbed(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    json.dumps(config)  # written as config.json
    settings = settings_from_mapping(config)
    assert [(e.ip, e.port) for e in settings.keyholed_servers] == [("10.9.0.1", 45001)]
    assert (settings.api.host, settings.api.port, settings.api.user) == ("127.0.0.1", 45002, "bwvisu-web")
    assert settings.api.password.get_secret_value() == "s3cret"
    assert settings.ssh.client_keys == [tmp_path / "id_ed25519"]
    assert settings.ssh.known_hosts == tmp_path / "known_hosts"
    assert settings.etcd_prefix == "/bwvisu-testbed-abc"
    assert {"template_webapp.txt", "template_xpra.txt"} <= {p.name for p in Path(settings.templates_dir).iterdir()}
    assert [g.internal_ip for g in settings.gateway_nodes] == ["10.9.0.6"]
    assert BASE["keyholed-servers"][0]["port"] == 4243  # the testbed's own mapping is left alone


def test_first_curl_carries_url_and_credentials() -> None:
    info = runner_process.RunnerInfo(42, "http://127.0.0.1:45002", "bwvisu-web", "s3cret")
    first, submit = info.curl_lines()
    assert first == "curl -u 'bwvisu-web:s3cret' http://127.0.0.1:45002/jobs"
    assert "template_webapp.txt" in submit
    assert submit.endswith(" http://127.0.0.1:45002/jobs")


def test_recorded_runner_is_found_and_stopped(tmp_path: Path) -> None:
    (tmp_path / runner_process.CONFIG_FILE).write_text(json.dumps(make_config(tmp_path)))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / runner_process.PID_FILE).write_text(f"{child.pid}\n")
        info = runner_process.info(tmp_path)
        assert info is not None
        assert (info.pid, info.url, info.password) == (child.pid, "http://127.0.0.1:45002", "s3cret")
        assert runner_process.alive(child.pid)
        assert runner_process.stop(tmp_path, timeout=5) == child.pid
        assert not runner_process.alive(child.pid)
        assert not (tmp_path / runner_process.PID_FILE).exists()
        assert runner_process.stop(tmp_path) is None  # nothing left to stop
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)


def test_no_recorded_runner(tmp_path: Path) -> None:
    assert runner_process.info(tmp_path) is None
    assert runner_process.stop(tmp_path) is None


def test_cli_arguments_reach_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    for name in ("cmd_up", "cmd_status", "cmd_down", "cmd_build"):
        monkeypatch.setattr(cli, name, record)
    assert cli.main(["up", "--gateways", "3", "--etcd", "3", "--api-port", "45002"]) == 0
    up = seen.pop()
    assert (up.compute, up.gateways, up.command, up.etcd, up.api_port, up.keyhole_port) == (2, 3, 1, 3, 45002, 0)
    assert cli.main(["status"]) == 0
    assert cli.main(["down", "abc123"]) == 0
    assert seen.pop().run == "abc123"
    with pytest.raises(SystemExit):
        cli.main(["up", "--etcd", "2"])
    with pytest.raises(SystemExit):
        cli.main([])
