"""The preflight at the start of ``serve``: nodes present, key and known_hosts files readable (and keys being
private keys), API password set, TLS files readable when given; one line per problem, naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest

from runner.config import settings_from_mapping
from runner.errors import PreflightFailed
from runner.preflight import preflight, require_preflight
from tests.unit.config_support import (
    BWVISU_CONFIG,
    clean_environment,  # noqa: F401 - autouse fixture
)

pytestmark = pytest.mark.unit


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    """A config serve could start with: bwVisu's shape plus a readable key, known_hosts and a password."""
    key = tmp_path / "id_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    (known_hosts := tmp_path / "known_hosts").write_text("")
    return {
        **BWVISU_CONFIG,
        "ssh": {"client-keys": [str(key)], "known-hosts": str(known_hosts)},
        "api": {"password": "s3cret-enough"},
    }


def test_a_complete_config_passes(good: dict[str, Any]) -> None:
    settings = settings_from_mapping(good)
    assert preflight(settings) == []
    require_preflight(settings)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"command-nodes": []}, "command-nodes: none configured; serve needs at least one node to run Slurm"),
        ({"gateway-nodes": []}, "gateway-nodes: none configured; serve needs at least one gateway"),
        ({"keyholed-servers": []}, "keyholed-servers: none configured"),
        ({"api": {}}, "api.password: not set; give it in the file or as RUNNER_API__PASSWORD"),
        ({"api": {"password": ""}}, "api.password: not set"),
        ({"templates-dir": "/nonexistent/templates"}, "templates-dir: /nonexistent/templates is not a folder"),
    ],
)
def test_each_missing_piece_is_one_line_naming_the_field(
    good: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    found = preflight(settings_from_mapping({**good, **change}))
    assert len(found) == 1
    assert found[0].startswith(problem)
    assert "\n" not in found[0]


def test_ssh_files(good: dict[str, Any], tmp_path: Path) -> None:
    key, known_hosts = good["ssh"]["client-keys"][0], good["ssh"]["known-hosts"]
    missing = tmp_path / "missing"
    (public := tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG example\n")
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "missing": ({"client-keys": [key, str(missing)]}, f"ssh.client-keys.1: cannot read private key {missing}: "),
        "public": ({"client-keys": [str(public)]}, f"ssh.client-keys.0: {public} is not a usable private key"),
        "folder": ({"client-keys": [str(tmp_path)]}, f"ssh.client-keys.0: cannot read private key {tmp_path}: "),
        "known-hosts": ({"known-hosts": str(missing)}, f"ssh.known-hosts: cannot read file {missing}"),
        "no known-hosts": ({"known-hosts": None}, "ssh.known-hosts: not set; serve needs a known_hosts file"),
    }
    for ssh, problem in cases.values():
        found = preflight(
            settings_from_mapping({**good, "ssh": {"client-keys": [key], "known-hosts": known_hosts, **ssh}})
        )
        assert len(found) == 1, found
        assert found[0].startswith(problem), found


def test_no_client_keys_falls_back_to_defaults_or_an_agent(
    good: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    config = {**good, "ssh": {"known-hosts": good["ssh"]["known-hosts"]}}
    assert preflight(settings_from_mapping(config)) == [
        "ssh.client-keys: none given, and neither a default key (~/.ssh/id_ed25519, ~/.ssh/id_ecdsa, "
        "~/.ssh/id_rsa) nor an SSH agent found"
    ]
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "id_ecdsa").write_text("key")
    assert preflight(settings_from_mapping(config)) == []


def test_tls_files_are_checked_when_given(good: dict[str, Any], tmp_path: Path) -> None:
    (cert := tmp_path / "c.pem").write_text("cert")
    missing = tmp_path / "k.pem"
    config = {
        **good,
        "api": {**good["api"], "tls-cert": str(cert), "tls-key": str(missing)},
        "keyhole": {"tls-cert": str(missing), "tls-key": str(cert), "tls-ca": str(missing)},
    }
    found = preflight(settings_from_mapping(config))
    assert [line.split(":")[0] for line in found] == ["api.tls-key", "keyhole.tls-cert", "keyhole.tls-ca"]
    assert all(f"cannot read file {missing}: No such file or directory" in line for line in found)


def test_every_problem_is_reported_at_once(good: dict[str, Any]) -> None:
    with pytest.raises(PreflightFailed) as caught:
        require_preflight(settings_from_mapping({**good, "command-nodes": [], "gateway-nodes": [], "api": {}}))
    assert [p.split(":")[0] for p in caught.value.problems] == ["command-nodes", "gateway-nodes", "api.password"]
    assert "s3cret" not in str(caught.value)
