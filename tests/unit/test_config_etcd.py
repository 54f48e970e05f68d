"""The ``etcd`` section: TLS files and user/password for the runner's link to etcd, validated, secrets kept out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from runner.config import EtcdSettings, load_settings, settings_from_mapping
from runner.errors import ConfigError
from tests.unit.config_support import clean_environment  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-etcd-pw"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
    return files


def test_bwvisu_etcd_servers_alone_mean_plain_etcd() -> None:
    settings = settings_from_mapping({"etcd-servers": [{"ip": "10.0.0.6", "port": 2379}]})
    assert settings.etcd_servers[0].ip == "10.0.0.6"
    assert settings.etcd == EtcdSettings()
    assert not settings.etcd.use_tls
    assert settings.etcd.user is None


def test_hyphenated_section(pem_files: dict[str, Path]) -> None:
    settings = settings_from_mapping(
        {
            "etcd-servers": [{"ip": "10.0.0.6", "port": 2379}],
            "etcd": {
                "ca-file": str(pem_files["ca"]),
                "cert-file": str(pem_files["cert"]),
                "key-file": str(pem_files["key"]),
                "user": "runner",
                "password": SECRET,
                "server-name": "etcd.cluster.example",
            },
        }
    )
    etcd = settings.etcd
    assert (etcd.ca_file, etcd.cert_file, etcd.key_file) == (pem_files["ca"], pem_files["cert"], pem_files["key"])
    assert etcd.use_tls
    assert etcd.user == "runner"
    assert etcd.password is not None
    assert etcd.password.get_secret_value() == SECRET
    assert etcd.server_name == "etcd.cluster.example"


def test_underscored_section(pem_files: dict[str, Path]) -> None:
    settings = settings_from_mapping({"etcd": {"ca_file": str(pem_files["ca"])}})
    assert settings.etcd.ca_file == pem_files["ca"]
    assert settings.etcd.use_tls


def test_tls_with_system_roots() -> None:
    assert settings_from_mapping({"etcd": {"tls": True}}).etcd.use_tls


@pytest.mark.parametrize("given", ["cert-file", "key-file"])
def test_cert_and_key_together(pem_files: dict[str, Path], given: str) -> None:
    with pytest.raises(ConfigError, match="cert-file and key-file must be given together"):
        settings_from_mapping({"etcd": {given: str(pem_files["cert"])}})


@pytest.mark.parametrize("field", ["ca-file", "cert-file", "key-file"])
def test_missing_file_names_the_field(tmp_path: Path, pem_files: dict[str, Path], field: str) -> None:
    section: dict[str, Any] = {"cert-file": str(pem_files["cert"]), "key-file": str(pem_files["key"])}
    section[field] = str(tmp_path / "nowhere.pem")
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"etcd": section})
    assert f"etcd.{field}" in caught.value.public
    assert "nowhere.pem" in caught.value.public


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"etcd\.ca-file"):
        settings_from_mapping({"etcd": {"ca-file": str(tmp_path)}})


@pytest.mark.parametrize("section", [{"user": "runner"}, {"password": SECRET}, {"user": "", "password": SECRET}])
def test_user_and_password_together(section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="user and password must be given together") as caught:
        settings_from_mapping({"etcd": section})
    assert SECRET not in str(caught.value)


def test_password_never_in_error_text(tmp_path: Path) -> None:
    # Another field is wrong; the password in the same section must not leak into the message.
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"etcd": {"user": "runner", "password": SECRET, "ca-file": str(tmp_path / "x")}})
    assert SECRET not in str(caught.value)
    assert SECRET not in caught.value.public
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"etcd": {"user": "runner", "password": SECRET, "bogus": SECRET}})
    assert SECRET not in str(caught.value)


def test_password_not_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_from_mapping({"etcd": {"user": "runner", "password": SECRET}})
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s %r", settings, settings)
    assert SECRET not in caplog.text
    assert SECRET not in repr(settings.etcd)


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNNER_ETCD__USER", "runner")
    monkeypatch.setenv("RUNNER_ETCD__PASSWORD", SECRET)
    (config := tmp_path / "config.json").write_text("{}")
    settings = load_settings(config)
    assert settings.etcd.user == "runner"
    assert settings.etcd.password is not None
    assert settings.etcd.password.get_secret_value() == SECRET


def test_unknown_key_refused() -> None:
    with pytest.raises(ConfigError, match=r"etcd\.certfile"):
        settings_from_mapping({"etcd": {"certfile": "/x"}})
