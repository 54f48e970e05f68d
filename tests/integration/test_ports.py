"""Port reservations on a real etcd: never the same port twice, inside the range, released only by the owner."""

from __future__ import annotations

import asyncio

import aetcd
import pytest

from runner.errors import PortsExhausted
from runner.gateway.iptables import ForwardRule
from runner.keyhole.ports import PortBook, PortRecord, forward_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_concurrent_reservations_from_two_books_never_share_a_port(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    books = [PortBook(etcd_client, etcd_prefix, 40000, 40099) for _ in range(2)]
    got = await asyncio.gather(*(books[i % 2].reserve(f"j-{i}", 2) for i in range(50)))
    ports = [p for pair in got for p in pair]
    assert len(ports) == 100
    assert set(ports) == set(range(40000, 40100))  # the full range, each port once
    with pytest.raises(PortsExhausted):
        await books[0].reserve("j-late", 1)
    assert {r.port for r in await books[0].all()} == set(ports)


async def test_release_frees_only_the_owners_ports(etcd_client: aetcd.Client, etcd_prefix: str) -> None:
    book = PortBook(etcd_client, etcd_prefix, 41000, 41001)
    [a] = await book.reserve("j-a", 1)
    assert await book.release("j-b", [a]) == 0
    assert [r.job_id for r in await book.all()] == ["j-a"]
    assert await book.release("j-a", [a]) == 1
    assert await book.all() == []


async def test_avoided_ports_are_skipped_and_static_mode_has_one_port(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    book = PortBook(etcd_client, etcd_prefix, 42000, 42002)
    assert sorted(await book.reserve("j-1", 2, avoid={42001})) == [42000, 42002]
    static = PortBook(etcd_client, etcd_prefix + "/s", 42000, 42002, static=43210)
    assert await static.reserve("j-1", 1) == [43210]
    with pytest.raises(PortsExhausted):
        await static.reserve("j-2", 1)


def test_a_placed_reservation_forwards_its_port_to_the_same_port_on_the_node() -> None:
    placed = PortRecord(job_id="j-1", port=50007, gateway="gw1", external_ip="192.0.2.1", internal_ip="10.0.0.5")
    assert forward_rule(placed) == ForwardRule("j-1", 50007, "10.0.0.5", 50007)
    with pytest.raises(ValueError, match="reserved, not placed"):
        forward_rule(PortRecord(job_id="j-1", port=50007))  # reserved, not yet placed
