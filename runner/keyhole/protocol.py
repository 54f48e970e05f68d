"""The keyhole wire format: the signed request a job sends, and the service's answer.

Request (``POST`` :data:`REQUEST_PATH`, JSON)::

    {"job-id": "j-1", "hostnames": ["vis01"], "ports": 2, "timestamp": 1700000000,
     "nonce": "<32 hex>", "signature": "<64 hex>"}

``signature`` is HMAC-SHA256, keyed with the job's token, over :data:`SIGNATURE_CONTEXT` followed by
the canonical JSON of the other five fields (sorted keys, no spaces, ASCII only). Verification
compares in constant time and checks the timestamp against a window; the nonce is handed back so
the service can record it in etcd (for at least the window) and refuse it a second time.

A client retrying after a lost answer resends the *same* signed bytes within the window, so the
service can recognise the retry by its nonce. The signing code (:func:`canonical_bytes`, :func:`sign`,
:func:`build_request`) has one home: the stdlib-only client (:mod:`runner.keyhole.client`) shipped into the
job; the service verifies with that same code, so the two cannot drift apart.

Answer: ``200`` with a JSON list of ``{"internal-port", "external-port", "gateway"}`` (``gateway`` is the
forward's ``external_ip``, the address the user connects to; see :func:`encode_forwards`), or a refusal
``{"error": <code>, "message": <text>}`` with the error's HTTP status; a 429 refusal adds
``"retry-after": <seconds>``. The client reads it with :func:`runner.keyhole.client.parse_answer`.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.errors import (
    BadSignature,
    MalformedRequest,
    RequestTooLarge,
    RunnerError,
    StaleRequest,
    TooManyRequests,
)
from runner.keyhole.client import REQUEST_PATH, SIGNATURE_CONTEXT, build_request, canonical_bytes, sign
from runner.records import JOB_ID, Forward
from runner.slurm.hostlist import DEFAULT_MAX_HOSTS

__all__ = [  # the signing names are the client's, re-exported: the runner and the job sign with one code
    "DEFAULT_WINDOW_SECONDS",
    "MAX_REQUEST_BYTES",
    "REQUEST_PATH",
    "SIGNATURE_CONTEXT",
    "BadSignature",
    "KeyholeRequest",
    "MalformedRequest",
    "RequestTooLarge",
    "StaleRequest",
    "build_request",
    "canonical_bytes",
    "encode_forwards",
    "encode_refusal",
    "parse_request",
    "sign",
    "too_large_refusal",
    "verify_request",
]

DEFAULT_WINDOW_SECONDS = 300
MAX_REQUEST_BYTES = 4 * 1024 * 1024

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_FIELDS = frozenset({"job-id", "hostnames", "ports", "timestamp", "nonce", "signature"})


def too_large_refusal(max_bytes: int) -> bytes:
    """The 413 body the keyhole listener sends (see :class:`runner.web.limits.BodyLimit`)."""
    return encode_refusal(RequestTooLarge(f"keyhole request body too large (limit {max_bytes} bytes)"))


@dataclass(frozen=True)
class KeyholeRequest:
    """A parsed request; authentic only once :func:`verify_request` has accepted it."""

    job_id: str
    hostnames: tuple[str, ...]
    ports: int
    timestamp: int
    nonce: str
    signature: str

    def signed_fields(self) -> dict[str, Any]:
        return {
            "job-id": self.job_id,
            "hostnames": list(self.hostnames),
            "ports": self.ports,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
        }


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    # bool is an int subclass; a JSON true is not a port count
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedRequest(internal=f"field {name!r} missing or not {kind.__name__}")
    return value


def parse_request(body: bytes, *, max_hosts: int = DEFAULT_MAX_HOSTS) -> KeyholeRequest:
    """Check a body's shape (not its signature): field types, job id, host names, nonce format."""
    if len(body) > MAX_REQUEST_BYTES:
        raise MalformedRequest(internal=f"body of {len(body)} bytes")
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(internal=f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise MalformedRequest(internal="not an object with exactly the request fields")
    job_id = _field(obj, "job-id", str)
    hostnames = _field(obj, "hostnames", list)
    ports = _field(obj, "ports", int)
    timestamp = _field(obj, "timestamp", int)
    nonce = _field(obj, "nonce", str)
    signature = _field(obj, "signature", str)
    if JOB_ID.fullmatch(job_id) is None:
        raise MalformedRequest(internal=f"bad job id {job_id[:140]!r}")
    if not hostnames or len(hostnames) > max_hosts:
        raise MalformedRequest(internal=f"{len(hostnames)} host names")
    if any(not isinstance(h, str) or _HOSTNAME.fullmatch(h) is None for h in hostnames):
        raise MalformedRequest(internal="bad host name")
    if len(set(hostnames)) != len(hostnames):
        raise MalformedRequest(internal="duplicate host names")
    if ports < 1:
        raise MalformedRequest(internal=f"ports={ports}")
    if _NONCE.fullmatch(nonce) is None or _SIGNATURE.fullmatch(signature) is None:
        raise MalformedRequest(internal="bad nonce or signature format")
    return KeyholeRequest(job_id, tuple(hostnames), ports, timestamp, nonce, signature)


def verify_request(
    request: KeyholeRequest, token: str, *, now: float, window_seconds: int = DEFAULT_WINDOW_SECONDS
) -> str:
    """Accept a request signed with ``token`` within ``window_seconds`` of ``now``; return its nonce.

    The signature is checked first (constant time), so an unauthenticated caller learns nothing about
    the clock. The caller must record the returned nonce (e.g. an etcd key with a lease of at least
    ``window_seconds``) and refuse a nonce it has seen.
    """
    expected = sign(request.signed_fields(), token)
    if not hmac.compare_digest(expected, request.signature):
        raise BadSignature(internal=f"job {request.job_id}")
    if abs(now - request.timestamp) > window_seconds:
        raise StaleRequest(internal=f"job {request.job_id}: timestamp {request.timestamp}, now {now:.0f}")
    return request.nonce


def encode_forwards(forwards: Sequence[Forward]) -> bytes:
    """The success body: the one conversion of forwards to what the job is told (``gateway`` is the public address)."""
    return json.dumps(
        [
            {"internal-port": f.internal_port, "external-port": f.external_port, "gateway": f.external_ip}
            for f in forwards
        ]
    ).encode()


def encode_refusal(error: RunnerError) -> bytes:
    """The refusal body for a runner error: its code and its public message, never the internal one.

    A 429 also carries ``retry-after`` (seconds, as in its ``Retry-After`` header), which the client honours.
    """
    body: dict[str, object] = {"error": error.code, "message": error.public}
    if isinstance(error, TooManyRequests):
        body["retry-after"] = error.retry_after
    return json.dumps(body).encode()
