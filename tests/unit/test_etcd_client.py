"""How the etcd client is set up from settings: the target, the checked name, the warning for plain links."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings, settings_from_mapping
from runner.errors import ConfigError
from runner.etcd import describe_link, etcd_client
from simulator.certs import TestCA

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-etcd-pw"


def settings(servers: list[tuple[str, int]], **etcd: Any) -> Settings:
    return settings_from_mapping({"etcd-servers": [{"ip": ip, "port": port} for ip, port in servers], "etcd": etcd})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    files = TestCA(tmp_path_factory.mktemp("pki")).issue("runner")
    return {"ca-file": str(files.ca), "cert-file": str(files.cert), "key-file": str(files.key)}


def test_one_member_is_dialled_by_address() -> None:
    s = settings([("10.0.0.6", 2379)], tls=True)
    client = etcd_client(s.etcd_servers, s.etcd)
    assert client.target == "10.0.0.6:2379"
    assert "grpc.ssl_target_name_override" not in client._options


def test_members_round_robin_and_one_checked_name(pki: dict[str, str]) -> None:
    s = settings([("10.0.0.6", 2379), ("10.0.0.7", 2379), ("10.0.0.8", 2380)], **pki)
    client = etcd_client(s.etcd_servers, s.etcd)
    assert client.target == "ipv4:10.0.0.6:2379,10.0.0.7:2379,10.0.0.8:2380"
    assert client._options["grpc.lb_policy_name"] == "round_robin"
    assert client._options["grpc.ssl_target_name_override"] == "10.0.0.6"


def test_server_name_is_checked_instead(pki: dict[str, str]) -> None:
    s = settings([("10.0.0.6", 2379)], **pki, **{"server-name": "etcd.cluster.example"})
    client = etcd_client(s.etcd_servers, s.etcd)
    assert client._options["grpc.ssl_target_name_override"] == "etcd.cluster.example"


def test_plain_link_to_another_host_warns_once_naming_the_endpoints(caplog: pytest.LogCaptureFixture) -> None:
    s = settings([("10.0.0.6", 2379), ("10.0.0.7", 2379)], user="runner", password=SECRET)
    with caplog.at_level(logging.WARNING, logger="runner.etcd"):
        etcd_client(s.etcd_servers, s.etcd)
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "10.0.0.6:2379, 10.0.0.7:2379" in warning.getMessage()
    assert "without TLS" in warning.getMessage()
    assert SECRET not in caplog.text


@pytest.mark.parametrize("hosts", [["127.0.0.1"], ["localhost"], ["::1", "127.0.0.2"]])
def test_plain_link_on_loopback_is_quiet(caplog: pytest.LogCaptureFixture, hosts: list[str]) -> None:
    s = settings([(h, 2379) for h in hosts])
    with caplog.at_level(logging.WARNING, logger="runner.etcd"):
        etcd_client(s.etcd_servers, s.etcd)
    assert caplog.records == []


def test_tls_link_is_quiet(caplog: pytest.LogCaptureFixture, pki: dict[str, str]) -> None:
    s = settings([("10.0.0.6", 2379)], **pki)
    with caplog.at_level(logging.WARNING, logger="runner.etcd"):
        etcd_client(s.etcd_servers, s.etcd)
    assert caplog.records == []


def test_file_gone_after_validation_is_a_config_error(tmp_path: Path) -> None:
    files = TestCA(tmp_path).issue("runner")
    s = settings(
        [("10.0.0.6", 2379)], **{"ca-file": str(files.ca), "cert-file": str(files.cert), "key-file": str(files.key)}
    )
    files.key.unlink()
    with pytest.raises(ConfigError, match=r"etcd\.key-file"):
        etcd_client(s.etcd_servers, s.etcd)


def test_no_servers_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        etcd_client([])


def test_link_description_names_the_means_never_the_password(pki: dict[str, str]) -> None:
    s = settings([("10.0.0.6", 2379)], **pki, user="runner", password=SECRET)
    assert describe_link(s.etcd) == "TLS, client certificate, user runner"
    assert describe_link(settings([("127.0.0.1", 2379)]).etcd) == "no TLS"
