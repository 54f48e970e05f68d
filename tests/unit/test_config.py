"""Settings: bwVisu's JSON accepted as is, search order, environment overrides, errors, secrets kept out of text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from runner.config import (
    GatewayNode,
    config_search_paths,
    find_config_file,
    load_settings,
    settings_from_mapping,
)
from runner.errors import ConfigError
from tests.unit.config_support import BWVISU_CONFIG, clean_environment  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.unit


def test_bwvisu_json_accepted_as_is() -> None:
    settings = settings_from_mapping(BWVISU_CONFIG)
    assert settings.bwvisu_home_prefix == "/home/bwvisu"
    assert settings.gateway_nodes[1] == GatewayNode(
        internal_ip="10.0.0.11", external_ip="193.196.1.11", user="runner", port=2222
    )
    assert [n.ip for n in settings.command_nodes] == ["10.0.0.2", "10.0.0.3"]
    assert settings.command_nodes[1].port == 22
    assert (settings.keyholed_servers[0].ip, settings.keyholed_servers[0].port) == ("10.0.0.5", 4243)
    assert (settings.keyholed_port_range.min, settings.keyholed_port_range.max) == (51000, 52000)
    assert settings.keyholed_max_forwarders_per_job == 2
    assert settings.etcd_servers[0].port == 2379
    assert settings.debug.keyholed_static_forwarding == 55555
    assert settings.forwarding_hostname_suffix == "-ib0"


def test_underscored_spelling_also_accepted() -> None:
    settings = settings_from_mapping({"bwvisu_home_prefix": "/h", "gateway_nodes": [BWVISU_CONFIG["gateway-nodes"][0]]})
    assert settings.bwvisu_home_prefix == "/h"
    assert settings.gateway_nodes[0].external_ip == "193.196.1.10"


def test_defaults() -> None:
    settings = settings_from_mapping({})
    assert settings.api.port == 4242
    assert settings.api.user == "bwvisu-web"
    assert (settings.keyholed_port_range.min, settings.keyholed_port_range.max) == (50000, 60000)
    assert settings.templates_dir.name == "templates"


def test_search_order(tmp_path: Path) -> None:
    install = tmp_path / "opt" / "runner" / "bin"
    assert config_search_paths(install) == [
        install / "config.json",
        install.parent / "etc" / "config.json",
        Path("/etc/runner/config.json"),
        Path("/opt/runner/etc/config.json"),
    ]


def test_first_existing_file_wins(tmp_path: Path) -> None:
    install = tmp_path / "install" / "bin"
    second = install.parent / "etc" / "config.json"
    second.parent.mkdir(parents=True)
    second.write_text(json.dumps({"bwvisu-home-prefix": "/second"}))
    assert find_config_file() == second
    assert load_settings().bwvisu_home_prefix == "/second"
    install.mkdir(parents=True)
    (install / "config.json").write_text(json.dumps({"bwvisu-home-prefix": "/first"}))
    assert load_settings().bwvisu_home_prefix == "/first"


def test_explicit_and_environment_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps(BWVISU_CONFIG))
    assert load_settings(chosen).forwarding_hostname_suffix == "-ib0"
    monkeypatch.setenv("RUNNER_CONFIG", str(chosen))
    assert find_config_file() == chosen
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_settings(tmp_path / "absent.json")


@pytest.mark.parametrize(("text", "match"), [("{not json", "cannot read config file"), ("[1, 2]", "JSON object")])
def test_unreadable_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(path)


def test_environment_overrides_file_including_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**BWVISU_CONFIG, "api": {"user": "frontend", "port": 8443}}))
    monkeypatch.setenv("RUNNER_API__PASSWORD", "from-env")
    monkeypatch.setenv("RUNNER_BWVISU_HOME_PREFIX", "/env-home")
    monkeypatch.setenv("RUNNER_KEYHOLED_MAX_FORWARDERS_PER_JOB", "7")
    settings = load_settings(path)
    assert settings.api.password.get_secret_value() == "from-env"
    assert settings.api.user == "frontend"  # the file's sibling keys survive the nested override
    assert settings.api.port == 8443
    assert settings.bwvisu_home_prefix == "/env-home"
    assert settings.keyholed_max_forwarders_per_job == 7
    assert len(settings.gateway_nodes) == 2


def test_overrides_argument_beats_file_but_not_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(BWVISU_CONFIG))
    assert load_settings(path, {"forwarding-hostname-suffix": "-eth1"}).forwarding_hostname_suffix == "-eth1"
    monkeypatch.setenv("RUNNER_FORWARDING_HOSTNAME_SUFFIX", "-env")
    assert load_settings(path, {"forwarding-hostname-suffix": "-eth1"}).forwarding_hostname_suffix == "-env"


def test_environment_json_in_bwvisu_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_GATEWAY_NODES", json.dumps(BWVISU_CONFIG["gateway-nodes"]))
    monkeypatch.setenv("RUNNER_DEBUG", json.dumps({"keyholed-static-forwarding": 50001}))
    settings = settings_from_mapping({})
    assert settings.gateway_nodes[0].internal_ip == "10.0.0.10"
    assert settings.debug.keyholed_static_forwarding == 50001


def test_malformed_environment_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_COMMAND_NODES", "[{not json")
    with pytest.raises(ConfigError, match="command_nodes"):
        settings_from_mapping({})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bwvisu-home-prefix": "home"}, "bwvisu-home-prefix must be an absolute path"),
        ({"keyholed-port-range": {"min": 60000, "max": 50000}}, "keyholed-port-range: Value error, min (60000)"),
        ({"keyholed-port-range": {"min": 0, "max": 5}}, "keyholed-port-range.min: Input should be greater than"),
        ({"gateway-nodes": [{"internal-ip": "a", "user": "u"}]}, "gateway-nodes.0.external-ip: Field required"),
        ({"command-nodes": [{"ip": "a", "user": "u", "port": 70000}]}, "command-nodes.0.port: Input should be less"),
        ({"command-nodes": [{"ip": "a", "user": "u", "colour": "red"}]}, "command-nodes.0.colour: unknown key"),
        ({"etcd-servers": [{"ip": "a", "port": "many"}]}, "etcd-servers.0.port: Input should be a valid integer"),
        ({"keyholed-max-forwarders-per-job": 0}, "keyholed-max-forwarders-per-job: Input should be greater"),
        ({"api": {"tls-cert": "/c.pem"}}, "tls_cert and tls_key must be given together"),
    ],
)
def test_validation_errors_name_field_and_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({**BWVISU_CONFIG, **change})
    assert message in caught.value.public
    assert caught.value.status == 500


def test_environment_validation_errors_name_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_API__PORT", "http")
    with pytest.raises(ConfigError, match=r"api\.port: Input should be a valid integer"):
        settings_from_mapping({})


def test_secrets_stay_out_of_repr_errors_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("RUNNER_API__PASSWORD", secret)
    with caplog.at_level(logging.DEBUG):
        settings = settings_from_mapping(BWVISU_CONFIG)
        logging.getLogger("test").info("settings: %s / %r / %s", settings, settings, settings.api)
    assert settings.api.password.get_secret_value() == secret
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())
    assert secret not in caplog.text
    # A bad value next to the secret: the error names fields, never values.
    monkeypatch.setenv("RUNNER_API__PORT", "bad")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(BWVISU_CONFIG)
    assert secret not in str(caught.value)


def test_secret_never_echoed_in_type_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"api": {"password": {"nested": "hunter2-very-secret"}}})
    assert "api.password: Input should be a valid string" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_settings_are_frozen_and_built_per_call() -> None:
    first = settings_from_mapping({"api": {"port": 1}})
    second = settings_from_mapping({"api": {"port": 2}})
    assert (first.api.port, second.api.port) == (1, 2)
    with pytest.raises(ValueError, match="frozen"):
        first.api.port = 3  # type: ignore[misc]


def test_compute_networks_and_min_uid_are_optional_and_checked() -> None:
    plain = settings_from_mapping(BWVISU_CONFIG)
    assert plain.compute_networks == []
    assert plain.min_uid == 1000
    settings = settings_from_mapping({**BWVISU_CONFIG, "compute-networks": ["10.0.0.0/24"], "min-uid": 2000})
    assert [str(n) for n in settings.compute_networks] == ["10.0.0.0/24"]
    assert settings.min_uid == 2000
    with pytest.raises(ConfigError, match="compute-networks"):
        settings_from_mapping({**BWVISU_CONFIG, "compute-networks": ["10.0.0.1/24"]})  # host bits set
    with pytest.raises(ConfigError, match="min-uid"):
        settings_from_mapping({**BWVISU_CONFIG, "min-uid": 0})


def test_keyhole_tls_settings_go_together(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    assert not settings_from_mapping(BWVISU_CONFIG).keyhole.tls
    both = settings_from_mapping({**BWVISU_CONFIG, "keyhole": {"tls-cert": str(cert), "tls-key": str(key)}})
    assert both.keyhole.tls
    with pytest.raises(ConfigError, match="tls_cert and tls_key must be given together"):
        settings_from_mapping({**BWVISU_CONFIG, "keyhole": {"tls-cert": str(cert)}})
    with pytest.raises(ConfigError, match="tls_ca needs tls_cert"):
        settings_from_mapping({**BWVISU_CONFIG, "keyhole": {"tls-ca": str(cert)}})


def test_an_unreadable_or_non_pem_keyhole_ca_is_a_config_error(tmp_path: Path) -> None:
    from runner.keyhole.assembly import Keyhole  # noqa: PLC0415

    (tmp_path / "k.pem").write_text("key")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    for ca, problem in ((tmp_path / "missing.pem", "cannot read"), (tmp_path / "junk.pem", "holds no PEM")):
        settings = settings_from_mapping(
            {**BWVISU_CONFIG, "keyhole": {"tls-cert": str(ca), "tls-key": str(tmp_path / "k.pem")}}
        )
        with pytest.raises(ConfigError, match=problem):
            Keyhole(settings, None, None, None)  # type: ignore[arg-type]


def test_site_helpers_are_off_by_default_and_must_be_absolute_paths() -> None:
    plain = settings_from_mapping(BWVISU_CONFIG)
    assert (plain.command_node_helper, plain.gateway_helper) == (None, None)  # bwVisu's sudo -u / sudo iptables
    settings = settings_from_mapping(
        {
            **BWVISU_CONFIG,
            "command-node-helper": "/usr/local/sbin/bwvisu-slurm-as",
            "gateway-helper": "/usr/local/sbin/bwvisu-forward",
        }
    )
    assert settings.command_node_helper == "/usr/local/sbin/bwvisu-slurm-as"
    assert settings.gateway_helper == "/usr/local/sbin/bwvisu-forward"
    for bad in ("bwvisu-forward", "/usr/local/sbin/bwvisu forward", "/x;rm -rf /", "/x$(id)", ""):
        with pytest.raises(ConfigError, match="gateway-helper: String should match pattern"):
            settings_from_mapping({**BWVISU_CONFIG, "gateway-helper": bad})
        with pytest.raises(ConfigError, match="command-node-helper: String should match pattern"):
            settings_from_mapping({**BWVISU_CONFIG, "command-node-helper": bad})
