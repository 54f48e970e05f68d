"""Keyhole records already in etcd, in the JSON shape the runner has always written, are read and written unchanged.

A port reservation is flat (``gateway`` is the gateway's SSH address, null until placed); a request record's
answer is what the job was told (``gateway`` there is the public address). Both shapes are pinned byte for byte.
"""

from __future__ import annotations

import aetcd
import pytest

from runner.keyhole.claims import Claims, ClaimStatus, Outcome, answered
from runner.keyhole.ports import PortBook, PortRecord, forward_rule
from runner.records import Forward

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RESERVED = b'{"job_id":"j-1","port":50001,"gateway":null,"external_ip":null,"internal_ip":null,"reserved_at":3.5}'
PLACED = (
    b'{"job_id":"j-1","port":50001,"gateway":"10.0.0.1","external_ip":"192.0.2.7","internal_ip":"10.1.0.5",'
    b'"reserved_at":3.5}'
)
FORWARD = Forward(
    internal_port=50001, external_port=50001, external_ip="192.0.2.7", gateway_ssh_ip="10.0.0.1", internal_ip="10.1.0.5"
)
NONCE, DIGEST = "a" * 32, "d" * 64
ANSWERED = (
    b'{"nonce":"' + NONCE.encode() + b'","digest":"' + DIGEST.encode() + b'","owner":"o","started":4.5,'
    b'"status":"done","answer":[{"internal_port":50001,"external_port":50001,"gateway":"192.0.2.7"}]}'
)


async def test_a_stored_reservation_is_read_and_placing_it_writes_the_same_shape(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    book = PortBook(etcd_client, etcd_prefix, 50000, 50010)
    key = f"{etcd_prefix}/keyhole/ports/50001".encode()
    await etcd_client.put(key, RESERVED)
    [reserved] = await book.of_job("j-1")
    assert (reserved.port, reserved.forward, reserved.gateway_ssh_ip, reserved.reserved_at) == (50001, None, None, 3.5)
    with pytest.raises(ValueError, match="reserved, not placed"):
        forward_rule(reserved)

    await book.place(PortRecord(job_id="j-1", port=50001, forward=FORWARD, reserved_at=3.5))
    stored = await etcd_client.get(key)
    assert stored is not None
    assert stored.value == PLACED
    [placed] = await book.all()
    assert placed.forward == FORWARD
    assert placed.gateway_ssh_ip == "10.0.0.1"
    assert (forward_rule(placed).internal_ip, forward_rule(placed).external_port) == ("10.1.0.5", 50001)


def test_a_reservation_forwards_its_own_port_only() -> None:
    other = FORWARD.model_copy(update={"external_port": 50002})
    with pytest.raises(ValueError, match="same port"):
        PortRecord(job_id="j-1", port=50001, forward=other)


async def test_a_stored_answer_is_judged_answered_and_finishing_writes_the_same_shape(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    claims = Claims(etcd_client, etcd_prefix, nonce_ttl=60, takeover_after=30)
    await etcd_client.put(f"{etcd_prefix}/keyhole/requests/j-1".encode(), ANSWERED)
    await etcd_client.put(f"{etcd_prefix}/keyhole/nonces/{NONCE}".encode(), DIGEST.encode())
    claim = await claims.claim("j-1", NONCE, DIGEST, "other-runner")
    assert claim.outcome is Outcome.ANSWERED
    assert claim.record is not None
    assert claim.record.answer == answered([FORWARD])  # what the job was told: the public address, not the SSH one

    await etcd_client.delete(f"{etcd_prefix}/keyhole/nonces/{NONCE}".encode())
    await etcd_client.delete(f"{etcd_prefix}/keyhole/requests/j-1".encode())
    fresh = await claims.claim("j-1", NONCE, DIGEST, "o")
    assert fresh.outcome is Outcome.NEW
    assert fresh.record is not None
    await claims.finish("j-1", fresh.record.model_copy(update={"started": 4.5}), [FORWARD])
    stored = await etcd_client.get(f"{etcd_prefix}/keyhole/requests/j-1".encode())
    assert stored is not None
    assert stored.value == ANSWERED
    assert fresh.record.status is ClaimStatus.PENDING
