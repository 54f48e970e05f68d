"""The stdlib-only keyhole client: the runner's one hostlist expander and signer, and its retry loop is bounded."""

from __future__ import annotations

import ast
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import HostlistError
from runner.keyhole import client, protocol
from runner.records import Forward
from runner.slurm import hostlist

pytestmark = pytest.mark.unit


def _forward(internal_port: int, external_port: int, external_ip: str) -> Forward:
    return Forward(
        internal_port=internal_port,
        external_port=external_port,
        external_ip=external_ip,
        gateway_ssh_ip="10.0.0.1",
        internal_ip="10.1.0.1",
    )


HOSTLIST_CORPUS = [
    "",
    "gpu5",
    "vis[01-03,07],gpu5",
    "n[8-10]",
    "n[098-101]",
    "r[1-2]n[01-02]",
    "n[1-2]-ib0,login",
    "n[1-2],n2,n[2-3]",
    "[1-2]x",
    "n[1-100000]",
    "n[1-100001]",
    "a[1-1000]b[1-1000]",
    "n[1-2",
    "n1]",
    "n[[1]]",
    "n[]",
    "n[3-1]",
    "a,,b",
    "a,",
    "-x",
    ".x",
    "a b",
    "n[1,,2]",
    "n[a]",
    "ü",
]


def _expand_both(text: str) -> tuple[object, object]:
    try:
        ours: object = hostlist.expand(text)
    except HostlistError:
        ours = "error"
    try:
        theirs: object = client.expand_hostlist(text)
    except ValueError:
        theirs = "error"
    return ours, theirs


def test_the_runner_expands_hostlists_with_the_client_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # one copy: the runner calls the client's expander, so the job and the runner cannot disagree
    monkeypatch.setattr(client, "expand_hostlist", lambda text, max_hosts: [f"from-client:{text}:{max_hosts}"])
    assert hostlist.expand("n[1-2]", max_hosts=7) == ["from-client:n[1-2]:7"]

    def refuse(text: str, max_hosts: int) -> list[str]:
        raise ValueError("bad range in hostlist: n[a]")

    monkeypatch.setattr(client, "expand_hostlist", refuse)
    with pytest.raises(HostlistError) as info:
        hostlist.expand("n[a]")
    assert (info.value.public, info.value.internal) == ("invalid hostlist", "bad range in hostlist: n[a]: 'n[a]'")


def test_a_too_large_hostlist_is_named_in_the_refusal() -> None:
    with pytest.raises(HostlistError) as info:
        hostlist.expand("n[1-6]", max_hosts=5)
    assert info.value.public == "hostlist names more than 5 hosts"


def test_the_runner_signs_and_verifies_with_the_client_code() -> None:
    assert protocol.build_request is client.build_request
    assert protocol.canonical_bytes is client.canonical_bytes
    assert protocol.sign is client.sign
    assert (protocol.REQUEST_PATH, protocol.SIGNATURE_CONTEXT) == (client.REQUEST_PATH, client.SIGNATURE_CONTEXT)


@pytest.mark.parametrize("text", HOSTLIST_CORPUS)
def test_client_and_runner_hostlists_agree(text: str) -> None:
    ours, theirs = _expand_both(text)
    assert ours == theirs


@given(st.text(alphabet="ab09-_.,[] ", max_size=20))
@settings(max_examples=500, deadline=None)
def test_client_and_runner_hostlists_agree_on_random_text(text: str) -> None:
    ours, theirs = _expand_both(text)
    assert ours == theirs


@given(
    job_id=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
    hosts=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), min_size=1, max_size=5, unique=True),
    ports=st.integers(1, 64),
    timestamp=st.integers(0, 2**40),
    token=st.text(min_size=1, max_size=40),
)
@settings(max_examples=200, deadline=None)
def test_the_service_verifies_what_the_client_signs(
    job_id: str, hosts: list[str], ports: int, timestamp: int, token: str
) -> None:
    nonce = "ab" * 16
    theirs = client.build_request(job_id, hosts, ports, token, timestamp=timestamp, nonce=nonce)
    request = protocol.parse_request(theirs)
    assert protocol.verify_request(request, token, now=timestamp) == nonce


def test_client_constants_match_protocol() -> None:
    assert client.MAX_HOSTS == hostlist.DEFAULT_MAX_HOSTS


def test_client_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(client.__file__).read_text())
    modules = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= {
        "__future__", "argparse", "hashlib", "hmac", "json", "os", "random", "re", "secrets",
        "shlex", "ssl", "sys", "time", "urllib", "typing",
    }  # fmt: skip


def test_answer_parses_and_becomes_export_lines() -> None:
    body = protocol.encode_forwards([_forward(50001, 50002, "192.0.2.7"), _forward(7, 8, "gw")])
    forwards = client.parse_answer(body, 2)
    assert forwards == [(50001, 50002, "192.0.2.7"), (7, 8, "gw")]
    assert client.export_lines(forwards) == (
        "export KEYHOLE_PORT0=50001 KEYHOLE_GATEWAY0=192.0.2.7 KEYHOLE_EXTERNAL_PORT0=50002\n"
        "export KEYHOLE_PORT1=7 KEYHOLE_GATEWAY1=gw KEYHOLE_EXTERNAL_PORT1=8\n"
    )


def test_export_lines_evaluate_in_a_shell() -> None:
    lines = client.export_lines([(50001, 50002, "192.0.2.7")])
    out = subprocess.run(
        ["bash", "-c", lines + 'echo "$KEYHOLE_PORT0 $KEYHOLE_GATEWAY0 $KEYHOLE_EXTERNAL_PORT0"'],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    assert out.stdout == "50001 192.0.2.7 50002\n"


def test_the_session_secret_is_exported_after_the_ports() -> None:
    lines = client.export_lines([(50001, 50002, "192.0.2.7")], "c2VjcmV0_LWZvci1q-b2I")
    assert lines.endswith("export KEYHOLE_SESSION_SECRET=c2VjcmV0_LWZvci1q-b2I\n")
    out = subprocess.run(
        ["bash", "-c", lines + 'echo "$KEYHOLE_SESSION_SECRET"; env | grep -c "^KEYHOLE_SESSION_SECRET="'],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    assert out.stdout == "c2VjcmV0_LWZvci1q-b2I\n1\n"  # exported: the application started next inherits it
    assert "SESSION" not in client.export_lines([(1, 2, "gw")])


@pytest.mark.parametrize(
    "body",
    [
        b'[{"internal-port": 1, "external-port": 2, "gateway": "$(touch /tmp/x)"}]',
        b'[{"internal-port": 1, "external-port": 2, "gateway": "a;b"}]',
        b'[{"internal-port": "1", "external-port": 2, "gateway": "g"}]',
        b'[{"internal-port": 1, "external-port": 2, "gateway": "g"}, {"internal-port": 1}]',
        b"[1, 2]",
        b"[]",
        b"{}",
    ],
)
def test_bad_or_short_answers_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        client.parse_answer(body, 2)


def test_refusal_text() -> None:
    assert client.refusal_text(b'{"error": "bad-signature", "message": "nope"}') == "nope (bad-signature)"
    assert client.refusal_text(b"<html>") is None
    assert client.refusal_text(b"[]") is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _send(fake: FakeTime, answers: list[tuple[int, bytes] | OSError], **kw: object) -> tuple[bytes, list[str]]:
    urls: list[str] = []

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        assert body == b"BODY"
        assert timeout > 0
        urls.append(url)
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    options: dict[str, object] = {"deadline": 60.0, "post": post, "clock": fake.clock, "sleep": fake.sleep}
    options.update(kw)
    got = client.send(b"BODY", ["http://a:1", "http://b:2/"], **options)  # type: ignore[arg-type]
    return got, urls


def test_send_retries_unreachable_services_in_turn_with_growing_jittered_backoff() -> None:
    fake = FakeTime()
    answers: list[tuple[int, bytes] | OSError] = [
        ConnectionRefusedError(),
        OSError("timed out"),
        (503, b'{"error": "state-unavailable", "message": "later"}'),
        (200, b"OK"),
    ]
    got, urls = _send(fake, answers, rand=lambda: 1.0)
    assert got == b"OK"
    assert urls == [
        "http://a:1/keyhole/v1/forwards",
        "http://b:2/keyhole/v1/forwards",
        "http://a:1/keyhole/v1/forwards",
        "http://b:2/keyhole/v1/forwards",
    ]
    assert fake.sleeps == [0.5, 1.0, 2.0]
    fake2 = FakeTime()
    _send(fake2, [ConnectionRefusedError(), (200, b"OK")], rand=lambda: 0.0)
    assert fake2.sleeps == [0.25]


def test_send_backoff_is_capped() -> None:
    fake = FakeTime()
    answers: list[tuple[int, bytes] | OSError] = [ConnectionRefusedError() for _ in range(8)]
    answers.append((200, b"OK"))
    _send(fake, answers, rand=lambda: 1.0, max_delay=4.0, deadline=1000.0)
    assert max(fake.sleeps) == 4.0


def test_send_gives_up_at_the_deadline() -> None:
    fake = FakeTime()
    answers: list[tuple[int, bytes] | OSError] = [ConnectionRefusedError("refused")] * 100
    with pytest.raises(client.KeyholeFailure, match="gave up after 10s") as info:
        _send(fake, answers, rand=lambda: 1.0, deadline=10.0)
    assert info.value.exit_code == client.EXIT_UNREACHABLE
    assert fake.now <= 10.0


def test_send_stops_at_once_on_a_4xx_refusal() -> None:
    fake = FakeTime()
    answers: list[tuple[int, bytes] | OSError] = [(403, b'{"error": "bad-signature", "message": "no"}')]
    with pytest.raises(client.KeyholeFailure, match=r"refused the request: no \(bad-signature\)") as info:
        _send(fake, answers)
    assert info.value.exit_code == client.EXIT_REFUSED
    assert fake.sleeps == []


def test_send_waits_as_a_429_asks_then_retries() -> None:
    fake = FakeTime()
    wait = b'{"error": "too-many-refusals", "message": "retry in 4 s", "retry-after": 4}'
    got, urls = _send(fake, [(429, wait), (200, b"OK")], rand=lambda: 0.0)
    assert got == b"OK"
    assert len(urls) == 2
    assert 4.0 <= fake.sleeps[0] < 5.0


def test_send_stops_on_a_429_without_a_sane_wait() -> None:
    for body in (b'{"error": "x", "message": "no"}', b'{"error": "x", "message": "no", "retry-after": 99999}'):
        with pytest.raises(client.KeyholeFailure, match="refused the request") as info:
            _send(FakeTime(), [(429, body)])
        assert info.value.exit_code == client.EXIT_REFUSED


def test_request_forwards_reports_missing_inputs() -> None:
    env = {"SLURM_JOB_NODELIST": "n[1-2]"}
    with pytest.raises(client.KeyholeFailure, match="no keyhole token"):
        client.request_forwards("j", 1, ["http://x"], env, None)
    with pytest.raises(client.KeyholeFailure, match="SLURM_JOB_NODELIST"):
        client.request_forwards("j", 1, ["http://x"], {}, "tok")
    with pytest.raises(client.KeyholeFailure, match="cannot parse the node list"):
        client.request_forwards("j", 1, ["http://x"], {"SLURM_NODELIST": "n[1-"}, "tok")


def test_request_forwards_falls_back_to_slurm_nodelist_and_signs() -> None:
    seen: list[bytes] = []

    def post(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        seen.append(body)
        return 200, protocol.encode_forwards([_forward(5, 6, "gw")])

    forwards = client.request_forwards(
        "j-9", 1, ["http://x"], {"SLURM_NODELIST": "n[1-2]"}, "tok", deadline=5.0, post=post
    )
    assert forwards == [(5, 6, "gw")]
    request = protocol.parse_request(seen[0])
    assert request.hostnames == ("n1", "n2")
    protocol.verify_request(request, "tok", now=request.timestamp)


def test_client_source_is_safe_to_embed() -> None:
    source = Path(client.__file__).read_text()
    assert "{{" not in source  # rendered templates must not see mustache tags in it
    assert not any(line.strip() == "KEYHOLE_CLIENT_EOF" for line in source.splitlines())
    assert len(source.encode()) < 60_000  # bash keeps heredocs this small in a pipe, not a temp file
    assert shlex.quote("x") == "x"
