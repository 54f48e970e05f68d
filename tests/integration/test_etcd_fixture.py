"""The etcd fixture is a real server: writes are visible, transactions are atomic, leases expire."""

import socket

import aetcd
import pytest

from simulator.etcd import EtcdServer

pytestmark = pytest.mark.integration


async def test_put_and_get_round_trip(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    await etcd_client.put(f"{etcd_prefix}/k".encode(), b"v")
    got = await etcd_client.get(f"{etcd_prefix}/k".encode())
    assert got is not None
    assert got.value == b"v"


async def test_create_only_transaction_wins_once(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}/once".encode()
    tx = etcd_client.transactions
    first, _ = await etcd_client.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, b"a")], failure=[])
    second, _ = await etcd_client.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, b"b")], failure=[])
    assert (first, second) == (True, False)
    got = await etcd_client.get(key)
    assert got is not None
    assert got.value == b"a"


def test_server_stops_and_frees_its_port() -> None:
    server = EtcdServer().start()
    port = server.port
    server.stop()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
