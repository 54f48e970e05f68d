"""The testbed's etcd takes only the runner: TLS with its client certificate, its user and password.

The runner's side uses ``Testbed.runner_config`` as is; the attacker's side stands on the host, which reaches
the etcd member's port on the cluster network like any machine there.
"""

from __future__ import annotations

import aetcd
import grpc
import pytest

from containers.etcd_members import CLIENT_PORT, ETCD_PREFIX
from containers.testbed import Testbed
from runner.config import settings_from_mapping
from runner.errors import StateUnavailable
from runner.etcd import EtcdClient, etcd_client
from tests.e2e.e2e_support import TOKEN, round_trip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_runner_configuration_reaches_etcd(testbed: Testbed) -> None:
    assert await round_trip(testbed, "link") == TOKEN


async def test_a_wrong_password_is_refused_without_showing_it(testbed: Testbed) -> None:
    with pytest.raises(StateUnavailable) as caught:
        await round_trip(testbed, "wrong-password", password="guessed-password")
    assert "authentication failed" in str(caught.value)
    assert "guessed-password" not in str(caught.value)
    assert testbed.etcd_security.auth.password not in str(caught.value)


async def test_no_way_in_without_the_runners_certificate_and_login(testbed: Testbed) -> None:
    await round_trip(testbed, "attacked")
    member = f"{testbed.endpoints.etcd[0].cluster_ip}:{CLIENT_PORT}"
    tokens = f"{ETCD_PREFIX}/e2e-{testbed.run_id}-attacked/tokens/j1".encode()
    host, port = member.split(":")
    async with aetcd.Client(host=host, port=int(port), timeout=10) as plain:
        with pytest.raises(aetcd.exceptions.ConnectionFailedError):
            await plain.get(tokens)
    # Through TLS with the server's CA only (no client certificate): the handshake fails.
    ca_only = grpc.ssl_channel_credentials(testbed.etcd_security.runner_files.ca.read_bytes())
    async with EtcdClient(member, credentials=ca_only, timeout=10) as anonymous:
        with pytest.raises(aetcd.exceptions.ConnectionFailedError):
            await anonymous.get(tokens)


async def test_runner_user_stays_in_its_prefix(testbed: Testbed) -> None:
    settings = settings_from_mapping(testbed.runner_config())
    async with etcd_client(settings.etcd_servers, settings.etcd, timeout=10) as client:
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await client.get_prefix(b"/", keys_only=True)
