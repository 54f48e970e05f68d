"""``bwvisu-testbed``'s parts that need no Docker: the attached runner container's configuration and the files
mounted with it, its bookkeeping, and the command line's arguments."""

from __future__ import annotations

import argparse
import json
import stat
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
    "etcd": {
        "ca-file": "/host/ca.pem",
        "cert-file": "/host/c.pem",
        "key-file": "/host/k.pem",
        "user": "u",
        "password": "p",
    },
}


def make_config() -> dict[str, Any]:
    return runner_process.runner_config(BASE, password="s3cret", prefix="/bwvisu-testbed-abc")


def test_the_runner_containers_config_names_the_files_mounted_with_it(tmp_path: Path) -> None:
    sources = {}
    for name in ("ssh/id_ed25519", "ssh/known_hosts", "etcd/ca.pem", "etcd/client.pem", "etcd/client-key.pem"):
        sources[name] = tmp_path / "host" / name.replace("/", "-")
        sources[name].parent.mkdir(exist_ok=True)
        sources[name].write_text(f"{name}\n")
    mount = tmp_path / "mount"
    runner_process.prepare_mount(mount, make_config(), sources, owner=None)
    assert stat.S_IMODE(mount.stat().st_mode) == 0o700
    for name, source in sources.items():
        assert (mount / name).read_text() == source.read_text()
        assert stat.S_IMODE((mount / name).stat().st_mode) == 0o600
    # as the container sees it: every path the configuration names is a file of the mount
    text = (mount / "config.json").read_text().replace(f'"{runner_process.CONFIG_DIR}/', f'"{mount}/')
    settings = settings_from_mapping(json.loads(text))
    assert settings.ssh.client_keys == [mount / "ssh" / "id_ed25519"]
    assert settings.ssh.known_hosts == mount / "ssh" / "known_hosts"
    assert (settings.etcd.ca_file, settings.etcd.cert_file, settings.etcd.key_file) == (
        mount / "etcd" / "ca.pem",
        mount / "etcd" / "client.pem",
        mount / "etcd" / "client-key.pem",
    )
    assert [(e.ip, e.port) for e in settings.keyholed_servers] == [
        (runner_process.HOSTNAME, runner_process.KEYHOLE_PORT)
    ]
    assert (settings.api.host, settings.api.port, settings.api.user) == (
        "0.0.0.0",
        runner_process.API_PORT,
        "bwvisu-web",
    )
    assert settings.api.password.get_secret_value() == "s3cret"
    assert settings.etcd_prefix == "/bwvisu-testbed-abc"
    assert settings.etcd.password is not None
    assert settings.etcd.password.get_secret_value() == "p"
    assert [g.internal_ip for g in settings.gateway_nodes] == ["10.9.0.6"]
    assert BASE["keyholed-servers"][0] == {"ip": "10.9.0.1", "port": 4243}  # the testbed's own mapping is left alone


def test_first_curl_carries_url_and_credentials() -> None:
    info = runner_process.RunnerInfo("bwvisu-abc-runner", "http://127.0.0.1:45002", "bwvisu-web", "s3cret")
    first, submit = info.curl_lines()
    assert first == "curl -u 'bwvisu-web:s3cret' http://127.0.0.1:45002/jobs"
    assert "template_webapp.txt" in submit
    assert submit.endswith(" http://127.0.0.1:45002/jobs")


def test_the_recorded_runner_is_found(tmp_path: Path) -> None:
    recorded = runner_process.RunnerInfo("bwvisu-abc-runner", "http://127.0.0.1:45002", "bwvisu-web", "s3cret")
    (tmp_path / runner_process.INFO_FILE).write_text(json.dumps(recorded.__dict__))
    assert runner_process.info(tmp_path) == recorded


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
    assert (up.compute, up.gateways, up.command, up.etcd, up.api_port) == (2, 3, 1, 3, 45002)
    assert cli.main(["status"]) == 0
    assert cli.main(["down", "abc123"]) == 0
    assert seen.pop().run == "abc123"
    with pytest.raises(SystemExit):
        cli.main(["up", "--etcd", "2"])
    with pytest.raises(SystemExit):
        cli.main([])
