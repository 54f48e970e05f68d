"""The runner's link to etcd over TLS with client certificates and etcd's own login, on real etcd processes.

One etcd serves TLS only with ``--client-cert-auth`` and authentication on (the runner's user may touch only
keys under its prefix); another has authentication on without TLS. Attack tests stand where an attacker
stands: someone who reaches etcd's port without the runner's certificate or password.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aetcd
import grpc
import pytest

from runner.app import Runner
from runner.config import Settings, settings_from_mapping
from runner.errors import StateUnavailable
from runner.etcd import EtcdClient, etcd_client
from runner.records import JobRecord
from runner.state import StateStore
from simulator import SimCluster
from simulator.certs import TestCA
from simulator.etcd import EtcdServer
from simulator.etcd_auth import EtcdAuth
from tests.integration.conftest import API_AUTH, api_client, runner_config
from tests.integration.jobs_support import submit, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "job-token-that-must-stay-secret"


@pytest.fixture(scope="session")
def secure_etcd() -> Iterator[EtcdServer]:
    """TLS only, client certificates demanded, authentication on."""
    with EtcdServer(tls=True, auth=EtcdAuth(prefix="/secure")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_etcd() -> Iterator[EtcdServer]:
    """Authentication on, no TLS; idle tokens expire after one second."""
    with EtcdServer(auth=EtcdAuth(prefix="/secure"), auth_token_ttl=1) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"/secure/test-{uuid.uuid4().hex[:12]}"


def settings_for(server: EtcdServer, **etcd: Any) -> Settings:
    section = {**server.runner_etcd(), **etcd}
    return settings_from_mapping(
        {"etcd-servers": [{"ip": server.host, "port": server.port}], "etcd": {k: v for k, v in section.items() if v}}
    )


async def open_store(settings: Settings, prefix: str) -> tuple[EtcdClient, StateStore]:
    client = etcd_client(settings.etcd_servers, settings.etcd, timeout=5)
    await client.connect()
    return client, StateStore(client, prefix)


@pytest.fixture
async def secure_store(secure_etcd: EtcdServer, prefix: str) -> AsyncIterator[StateStore]:
    client, store = await open_store(settings_for(secure_etcd), prefix)
    try:
        yield store
    finally:
        await client.close()


def record(job_id: str = "j1") -> JobRecord:
    return JobRecord(job_id=job_id, uid="alice", template_name="t.txt", variables={"a": "1"})


def assert_no_secret(text: str, server: EtcdServer) -> None:
    assert server.auth is not None
    for secret in (server.auth.password, server.auth.root_password, TOKEN):
        assert secret not in text


# -- what works ---------------------------------------------------------------------------------------------


async def test_store_over_tls_and_auth(secure_store: StateStore) -> None:
    await secure_store.create_job(record(), TOKEN)
    got = await secure_store.get_job("j1")
    assert got is not None
    assert got.uid == "alice"
    assert await secure_store.get_token("j1") == TOKEN

    def note(r: JobRecord) -> JobRecord:
        r.details["seen"] = "yes"
        return r

    updated = await secure_store.update_job("j1", note)  # a compare-and-swap transaction
    assert updated is not None
    assert updated.details["seen"] == "yes"
    client = secure_store.client
    lease = await client.lease(5)
    key = f"{secure_store.prefix}/leased".encode()
    await client.put(key, b"x", lease=lease)
    await lease.refresh()
    assert await lease.remaining_ttl() > 0
    await lease.revoke()
    assert await client.get(key) is None


async def test_runner_over_tls_and_auth(sim_cluster: SimCluster, secure_etcd: EtcdServer, prefix: str) -> None:
    data = runner_config(sim_cluster, secure_etcd, prefix)
    data["etcd"] = secure_etcd.runner_etcd()
    async with Runner(settings_from_mapping(data)) as runner, api_client(runner) as api:
        job_id = await submit(api)
        # "running" needs the job watcher, which runs only under its etcd lease (leadership).
        body = await wait_state(api, job_id, "running")
        assert body["uid"] == "alice"
        assert (await api.get("/jobs", auth=API_AUTH)).json() == {"jobs": [job_id]}
        assert runner.leadership.is_leader


async def test_two_addresses_for_the_members_still_check_the_certificate(secure_etcd: EtcdServer, prefix: str) -> None:
    # A member list dials ipv4:a,b with round robin; every member's certificate is checked against one name.
    base = settings_for(secure_etcd)
    member = {"ip": secure_etcd.host, "port": secure_etcd.port}
    listed = base.model_copy(update={"etcd_servers": [base.etcd_servers[0]] * 2})
    client, store = await open_store(listed, prefix)
    try:
        await store.create_job(record(), TOKEN)
        assert await store.get_token("j1") == TOKEN
    finally:
        await client.close()
    wrong = settings_from_mapping(
        {"etcd-servers": [member, member], "etcd": {**secure_etcd.runner_etcd(), "server-name": "elsewhere.example"}}
    )
    client, store = await open_store(wrong, prefix)
    try:
        with pytest.raises(StateUnavailable):
            await store.get_token("j1")
    finally:
        await client.close()


async def test_expired_token_is_renewed_once_for_concurrent_calls(
    auth_etcd: EtcdServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, store = await open_store(settings_for(auth_etcd), prefix)
    try:
        await store.create_job(record(), TOKEN)
        await asyncio.sleep(2.5)  # idle past the token's 1 s TTL: etcd forgets it
        with caplog.at_level(logging.DEBUG, logger="runner.etcd"):
            tokens = await asyncio.gather(*(store.get_token("j1") for _ in range(10)))
        assert tokens == [TOKEN] * 10
        assert caplog.text.count("logged in as runner") == 1
        assert_no_secret(caplog.text, auth_etcd)
    finally:
        await client.close()


async def test_streams_carry_the_token(auth_etcd: EtcdServer, prefix: str) -> None:
    # Watch is a stream-stream call: it must carry the login token like the unary calls.
    client, _ = await open_store(settings_for(auth_etcd), prefix)
    key = f"{prefix}/watched".encode()
    try:
        watching = asyncio.create_task(client.watch_once(key, timeout=10))
        await asyncio.sleep(0.5)
        await client.put(key, b"seen")
        event = await watching
        assert event.kv.value == b"seen"
    finally:
        await client.close()


# -- what fails, clearly, with no secret in the message -----------------------------------------------------


async def refused(settings: Settings, prefix: str) -> StateUnavailable:
    client, store = await open_store(settings, prefix)
    try:
        with pytest.raises(StateUnavailable) as caught:
            await store.get_job("j1")
    finally:
        await client.close()
    return caught.value


async def test_without_client_certificate(secure_etcd: EtcdServer, prefix: str) -> None:
    error = await refused(settings_for(secure_etcd, **{"cert-file": None, "key-file": None}), prefix)
    assert error.public == StateUnavailable.default_public
    assert_no_secret(str(error), secure_etcd)


async def test_with_the_wrong_ca(secure_etcd: EtcdServer, prefix: str, tmp_path: Path) -> None:
    other = TestCA(tmp_path / "other")
    files = other.issue("runner")
    etcd = {"ca-file": str(files.ca), "cert-file": str(files.cert), "key-file": str(files.key)}
    error = await refused(settings_for(secure_etcd, **etcd), prefix)
    assert "handshake" in str(error).lower() or "certificate" in str(error).lower(), error
    assert_no_secret(str(error), secure_etcd)


@pytest.mark.parametrize("server_name", ["secure_etcd", "auth_etcd"])
async def test_with_a_wrong_password(server_name: str, prefix: str, request: pytest.FixtureRequest) -> None:
    server: EtcdServer = request.getfixturevalue(server_name)
    error = await refused(settings_for(server, password="not-the-password"), prefix)
    assert "authentication failed" in str(error)
    assert "not-the-password" not in str(error)
    assert_no_secret(str(error), server)


async def test_plain_client_against_the_tls_server(secure_etcd: EtcdServer) -> None:
    async with aetcd.Client(host=secure_etcd.host, port=secure_etcd.port, timeout=5) as plain:
        with pytest.raises(aetcd.exceptions.ConnectionFailedError):
            await plain.get(b"/secure/anything")


# -- attacks: someone who reaches etcd's port tries to read the job tokens ----------------------------------


async def test_unauthenticated_client_cannot_read_tokens(auth_etcd: EtcdServer, prefix: str) -> None:
    client, store = await open_store(settings_for(auth_etcd), prefix)
    try:
        await store.create_job(record(), TOKEN)
    finally:
        await client.close()
    async with aetcd.Client(host=auth_etcd.host, port=auth_etcd.port, timeout=5) as intruder:
        for read in (intruder.get(f"{prefix}/tokens/j1".encode()), intruder.get_prefix(b"/", keys_only=True)):
            with pytest.raises(aetcd.exceptions.ClientError) as caught:
                await read
            assert "user name is empty" in str(caught.value)


async def test_certificate_of_another_name_cannot_read_tokens(
    secure_etcd: EtcdServer, secure_store: StateStore
) -> None:
    # A certificate from the same CA (issued for some other service) gets through TLS, but etcd takes its
    # common name as the user, and no such user may read anything.
    await secure_store.create_job(record(), TOKEN)
    assert secure_etcd.ca is not None
    files = secure_etcd.ca.issue("other-service")
    creds = grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())
    async with EtcdClient(f"{secure_etcd.host}:{secure_etcd.port}", credentials=creds, timeout=5) as intruder:
        with pytest.raises(aetcd.exceptions.ClientError) as caught:
            await intruder.get(f"{secure_store.prefix}/tokens/j1".encode())
        assert "permission denied" in str(caught.value)


async def test_runner_user_cannot_leave_its_prefix(secure_store: StateStore) -> None:
    with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
        await secure_store.client.get_prefix(b"/", keys_only=True)
    with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
        await secure_store.client.put(b"/secured-sibling/x", b"x")
