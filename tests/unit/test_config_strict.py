"""Strict settings: unknown keys refused at every level with the closest key suggested, numbers as numbers,
the environment's RUNNER_* variables sorted (applied, refused, ignored with a warning), no file at all."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings, config_search_paths, load_settings, settings_from_mapping
from runner.configenv import environment_report
from runner.errors import ConfigError, InvalidSettings
from tests.unit.config_support import (
    BWVISU_CONFIG,
    clean_environment,  # noqa: F401 - autouse fixture
)

pytestmark = pytest.mark.unit

GATEWAY = BWVISU_CONFIG["gateway-nodes"][0]


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSettings) as caught:
        settings_from_mapping(data)
    return caught.value.problems


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"gateway-node": []}, "gateway-node: unknown key (did you mean gateway-nodes?)"),
        ({"gateway_node": []}, "gateway-node: unknown key (did you mean gateway-nodes?)"),
        ({"comand-nodes": []}, "comand-nodes: unknown key (did you mean command-nodes?)"),
        ({"keyholed-port-ranges": {}}, "keyholed-port-ranges: unknown key (did you mean keyholed-port-range?)"),
        ({"api": {"prot": 1}}, "api.prot: unknown key (did you mean port?)"),
        ({"ssh": {"known-host": "/k"}}, "ssh.known-host: unknown key (did you mean known-hosts?)"),
        ({"debug": {"static-forwarding": 1}}, "debug.static-forwarding: unknown key (did you mean keyholed-static"),
        (
            {"gateway-nodes": [{"internal-ip": "a", "externalip": "b", "user": "u"}]},
            "gateway-nodes.0.externalip: unknown key (did you mean external-ip?)",
        ),
        ({"keyholed-port-range": {"low": 1}}, "keyholed-port-range.low: unknown key (known keys: min, max)"),
        ({"colour": "red"}, "colour: unknown key (see docs/configuration.md for every key)"),
    ],
)
def test_unknown_keys_refused_with_the_closest_key(change: dict[str, Any], problem: str) -> None:
    found = problems({**BWVISU_CONFIG, **change})
    assert [p for p in found if "unknown key" in p] == [p for p in found if p.startswith(problem)]
    assert any(p.startswith(problem) for p in found)


def test_a_key_given_in_both_spellings_is_refused() -> None:
    assert problems({"gateway-nodes": [], "gateway_nodes": []}) == [
        "gateway-nodes: given twice (as gateway-nodes and gateway_nodes)"
    ]
    assert problems({"api": {"tls-cert": "/a", "tls_cert": "/b"}}) == [
        "api.tls-cert: given twice (as tls-cert and tls_cert)"
    ]


def test_an_unknown_keys_value_is_never_repeated() -> None:
    found = problems({"api": {"pasword": "hunter2-very-secret"}})
    assert found == ["api.pasword: unknown key (did you mean password?)"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"api": {"port": "4242"}}, 'api.port: Input should be a valid integer, not a string (write 4242, not "4242")'),
        ({"gateway-nodes": [{**GATEWAY, "port": "22"}]}, "gateway-nodes.0.port: Input"),
        ({"command-nodes": [{"ip": "a", "user": "u", "port": "22"}]}, "command-nodes.0.port: Input should be a valid"),
        ({"etcd-servers": [{"ip": "a", "port": "2379"}]}, "etcd-servers.0.port: Input should be a valid integer, not"),
        ({"keyholed-port-range": {"min": "50000", "max": 60000}}, "keyholed-port-range.min: Input should be a valid"),
        ({"keyholed-max-forwarders-per-job": "4"}, "keyholed-max-forwarders-per-job: Input should be a valid integer"),
        ({"debug": {"keyholed-static-forwarding": "55555"}}, "debug.keyholed-static-forwarding: Input should be"),
        ({"min-uid": "1000"}, "min-uid: Input should be a valid integer, not a string"),
        ({"watcher": {"leader-ttl": "10"}}, "watcher.leader-ttl: Input should be a valid integer, not a string"),
        ({"ssh": {"connect-timeout": "10"}}, "ssh.connect-timeout: Input should be a valid number, not a string"),
        ({"etcd": {"tls": "true"}}, "etcd.tls: Input should be a valid boolean, not a string"),
        ({"api": {"port": True}}, "api.port: Input should be a valid integer"),
    ],
)
def test_numbers_and_booleans_written_as_strings_are_refused(change: dict[str, Any], problem: str) -> None:
    found = problems({**BWVISU_CONFIG, **change})
    assert len(found) == 1
    assert found[0].startswith(problem)


def test_numbers_from_a_json_file_are_strict_too(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BWVISU_CONFIG, "api": {"port": "4242"}}))
    with pytest.raises(ConfigError, match=r"api\.port: Input should be a valid integer, not a string"):
        load_settings(path)


def test_environment_values_are_text_and_still_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_API__PORT", "8443")
    monkeypatch.setenv("RUNNER_SSH__CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("RUNNER_ETCD__TLS", "true")
    monkeypatch.setenv("RUNNER_MIN_UID", "2000")
    settings = settings_from_mapping(BWVISU_CONFIG)
    assert (settings.api.port, settings.ssh.connect_timeout, settings.etcd.tls) == (8443, 2.5, True)
    assert settings.min_uid == 2000


def test_an_unknown_key_inside_an_environment_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_API", json.dumps({"prot": 1}))
    assert problems({}) == ["api.prot: unknown key (did you mean port?)"]


def test_an_unknown_key_under_a_known_section_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_API__PASWORD", "hunter2-very-secret")
    assert problems(BWVISU_CONFIG) == ["RUNNER_API__PASWORD: unknown setting (did you mean RUNNER_API__PASSWORD?)"]


# What CI systems (GitHub Actions) and other software put in an environment: none of it is for the runner.
FOREIGN = {
    "RUNNER_OS": "Linux",
    "RUNNER_TEMP": "/tmp/x",
    "RUNNER_ARCH": "X64",
    "RUNNER_NAME": "GitHub Actions 2",
    "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
    "RUNNER_WORKSPACE": "/home/runner/work",
    "RUNNER_DEBUG": "1",
    "runner_lowercase": "x",
    "GATEWAY_NODES": "not ours",
    "API__PORT": "not ours",
}


def test_unrelated_environment_never_breaks_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in FOREIGN.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(BWVISU_CONFIG))
    settings = load_settings(path)
    assert settings.debug.keyholed_static_forwarding == 55555  # RUNNER_DEBUG=1 did not replace the file's section
    assert settings.gateway_nodes[0].internal_ip == "10.0.0.10"


def test_ignored_variables_are_warned_about_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RUNNER_API_PASSWORD", "hunter2-very-secret")  # dev's variable; serve's is RUNNER_API__PASSWORD
    monkeypatch.setenv("RUNNER_TEMP", "/tmp/x")
    monkeypatch.setenv("RUNNER_DEBUG", "1")
    monkeypatch.setenv("RUNNER_API__USER", "frontend")
    path = tmp_path / "config.json"
    path.write_text("{}")
    with caplog.at_level(logging.WARNING, logger="runner.config"):
        settings = load_settings(path)
    assert settings.api.user == "frontend"
    assert settings.api.password.get_secret_value() == ""
    assert caplog.messages == [
        "RUNNER_API_PASSWORD: not a runner setting, ignored (did you mean RUNNER_API__PASSWORD?)",
        "RUNNER_DEBUG: ignored: the debug section takes a JSON object (or set its keys as RUNNER_DEBUG__<KEY>)",
        "RUNNER_TEMP: not a runner setting, ignored",
    ]
    assert "hunter2" not in caplog.text


def test_environment_report_sorts_the_variables() -> None:
    report = environment_report(
        Settings,
        {
            "RUNNER_API__PASSWORD": "s",
            "RUNNER_GATEWAY_NODES": "[]",
            "RUNNER_CONFIG": "/etc/runner/config.json",
            "RUNNER_INSTALL_DIR": "/opt/runner/bin",
            "RUNNER_SSH__KNOWNHOSTS": "/k",
            "RUNNER_GATEWAY_NODE": "[]",
            "HOME": "/root",
        },
    )
    assert report.used == ["RUNNER_API__PASSWORD", "RUNNER_GATEWAY_NODES"]
    assert report.errors == ["RUNNER_SSH__KNOWNHOSTS: unknown setting (did you mean RUNNER_SSH__KNOWN_HOSTS?)"]
    assert report.warnings == [
        "RUNNER_GATEWAY_NODE: not a runner setting, ignored (did you mean RUNNER_GATEWAY_NODES?)"
    ]


def test_no_config_file_lists_the_places_searched() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = caught.value.public
    assert message.startswith("no config file found; searched: ")
    assert "\n" not in message
    for path in config_search_paths():
        assert str(path) in message
