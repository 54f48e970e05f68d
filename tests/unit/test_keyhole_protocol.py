"""The keyhole wire format: signing, verification, replay inputs and the answer shapes."""

from __future__ import annotations

import json

import pytest

from runner.errors import BadSignature, Forbidden, MalformedRequest, NoSuchJob, StaleRequest
from runner.keyhole import client
from runner.keyhole.protocol import (
    build_request,
    canonical_bytes,
    encode_forwards,
    encode_refusal,
    parse_request,
    sign,
    verify_request,
)
from runner.records import Forward

pytestmark = pytest.mark.unit

TOKEN = "t0ken-for-job-1_abcdefghijklmnop"
NOW = 1_700_000_000


def _body(**overrides: object) -> bytes:
    kwargs: dict[str, object] = {
        "job_id": "j-1",
        "hostnames": ["vis01", "vis02"],
        "ports": 2,
        "token": TOKEN,
        "timestamp": NOW,
        "nonce": "0" * 32,
    }
    kwargs.update(overrides)
    return build_request(**kwargs)  # type: ignore[arg-type]


def _resign(obj: dict[str, object], token: str = TOKEN) -> bytes:
    fields = {k: v for k, v in obj.items() if k != "signature"}
    return json.dumps({**fields, "signature": sign(fields, token)}).encode()


def test_a_signed_request_verifies_and_yields_its_nonce() -> None:
    request = parse_request(_body())
    assert request.job_id == "j-1"
    assert request.hostnames == ("vis01", "vis02")
    assert request.ports == 2
    assert verify_request(request, TOKEN, now=NOW) == "0" * 32


def test_canonical_encoding_is_fixed() -> None:
    # pinned bytes: the embedded client signs exactly this, so any change breaks running jobs
    fields = {"nonce": "ab", "ports": 1, "job-id": "j", "hostnames": ["h"], "timestamp": 5}
    assert canonical_bytes(fields) == (
        b'bwvisu-keyhole-v1\n{"hostnames":["h"],"job-id":"j","nonce":"ab","ports":1,"timestamp":5}'
    )
    assert sign(fields, "k") == sign(dict(reversed(fields.items())), "k")


def test_a_wrong_token_is_a_bad_signature() -> None:
    request = parse_request(_body(token="another-token-entirely-xxxxxxxx"))
    with pytest.raises(BadSignature) as info:
        verify_request(request, TOKEN, now=NOW)
    assert isinstance(info.value, Forbidden)
    assert info.value.code == "bad-signature"


@pytest.mark.parametrize(
    ("field", "value"),
    [("ports", 3), ("hostnames", ["vis01", "evil"]), ("job-id", "j-2"), ("timestamp", NOW + 1)],
)
def test_any_changed_field_breaks_the_signature(field: str, value: object) -> None:
    obj = json.loads(_body())
    obj[field] = value
    with pytest.raises(BadSignature):
        verify_request(parse_request(json.dumps(obj).encode()), TOKEN, now=NOW)


def test_a_bad_signature_is_reported_before_staleness() -> None:
    request = parse_request(_body(token="another-token-entirely-xxxxxxxx", timestamp=NOW - 10_000))
    with pytest.raises(BadSignature):
        verify_request(request, TOKEN, now=NOW)


@pytest.mark.parametrize(("skew", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_timestamp_window(skew: int, ok: bool) -> None:
    request = parse_request(_body(timestamp=NOW + skew))
    if ok:
        verify_request(request, TOKEN, now=NOW)
    else:
        with pytest.raises(StaleRequest):
            verify_request(request, TOKEN, now=NOW)


def test_window_is_configurable() -> None:
    request = parse_request(_body(timestamp=NOW - 20))
    with pytest.raises(StaleRequest):
        verify_request(request, TOKEN, now=NOW, window_seconds=10)


def test_build_request_draws_a_fresh_nonce_each_time() -> None:
    nonces = {parse_request(_body(nonce=None)).nonce for _ in range(20)}
    assert len(nonces) == 20


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("nonce"),
        lambda o: o.update(extra=1),
        lambda o: o.update(ports=0),
        lambda o: o.update(ports=True),
        lambda o: o.update(ports="2"),
        lambda o: o.update(timestamp=1.5),
        lambda o: o.update(hostnames=[]),
        lambda o: o.update(hostnames=["a", "a"]),
        lambda o: o.update(hostnames=["-oProxy"]),
        lambda o: o.update(hostnames=["a b"]),
        lambda o: o.update(hostnames=[1]),
        lambda o: o.update(hostnames="vis01"),
        lambda o: o.update(**{"job-id": "../etc"}),
        lambda o: o.update(**{"job-id": ""}),
        lambda o: o.update(nonce="xyz"),
    ],
)
def test_malformed_requests_are_refused_even_if_signed(mutate: object) -> None:
    obj = json.loads(_body())
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(MalformedRequest):
        parse_request(_resign(obj))


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"\xff\xfe", b'{"job-id": 1}'])
def test_garbage_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedRequest) as info:
        parse_request(body)
    assert info.value.status == 400


def test_too_many_hosts_is_malformed() -> None:
    with pytest.raises(MalformedRequest):
        parse_request(_body(hostnames=["a", "b", "c"]), max_hosts=2)


def test_a_too_large_body_is_refused_unread() -> None:
    with pytest.raises(MalformedRequest):
        parse_request(b" " * (4 * 1024 * 1024 + 1))


def test_a_signed_request_is_byte_for_byte_what_the_job_has_always_sent() -> None:
    # captured from the client before the runner took its signing code from it: the protocol must not change
    assert _body() == (
        b'{"job-id":"j-1","hostnames":["vis01","vis02"],"ports":2,"timestamp":1700000000,'
        b'"nonce":"00000000000000000000000000000000",'
        b'"signature":"62b6965d2c497592cea9180da104aa06f5d852ffff321d6b44486f8341fe24a0"}'
    )


def test_the_answer_tells_the_job_the_public_address_as_gateway_never_the_ssh_address() -> None:
    forwards = [
        Forward(internal_port=50001, external_port=50001, external_ip="192.0.2.7", gateway_ssh_ip="10.0.0.1",
                internal_ip="10.1.0.5"),
        Forward(internal_port=50002, external_port=50003, external_ip="gw1.example", gateway_ssh_ip="10.0.0.2",
                internal_ip="10.1.0.6", reachable=True),
    ]  # fmt: skip
    body = encode_forwards(forwards)
    assert body == (
        b'[{"internal-port": 50001, "external-port": 50001, "gateway": "192.0.2.7"}, '
        b'{"internal-port": 50002, "external-port": 50003, "gateway": "gw1.example"}]'
    )
    assert client.parse_answer(body, 2) == [(50001, 50001, "192.0.2.7"), (50002, 50003, "gw1.example")]


def test_refusal_carries_code_and_public_message_only() -> None:
    body = encode_refusal(NoSuchJob(internal="etcd key /jobs/x missing"))
    assert json.loads(body) == {"error": "no-such-job", "message": "no such job"}
    assert client.refusal_text(body) == "no such job (no-such-job)"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b'[{"internal-port": 0, "external-port": 1, "gateway": "g"}]',
        b'[{"internal-port": 1, "external-port": 70000, "gateway": "g"}]',
        b'[{"internal-port": 1, "external-port": 2, "gateway": "$(reboot)"}]',
        b'[{"internal-port": true, "external-port": 2, "gateway": "g"}]',
        b"[1]",
        b"nope",
    ],
)
def test_bad_answers_raise_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the one error type the client maps
        client.parse_answer(body, 1)
