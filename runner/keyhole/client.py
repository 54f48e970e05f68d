"""The keyhole client: runs inside a job on a compute node and asks the keyhole service for port forwards.

Standard library only, one file, Python >= 3.7: it is embedded into the batch script by
:mod:`runner.keyhole.script` and fed to ``python3 -`` through a quoted heredoc, followed by one line
that calls :func:`main` with the job's token, so the token never lands in a file or in ``ps``.
It is the one home of the hostlist expander and of the request signing: the runner imports both from here
(:mod:`runner.slurm.hostlist`, :mod:`runner.keyhole.protocol`), and this file imports nothing from the runner.

It expands ``SLURM_JOB_NODELIST`` (or ``SLURM_NODELIST``), signs one request, and sends the same bytes
to the service URLs in turn until one answers, backing off exponentially with jitter while none can
be reached or one answers 5xx, for a bounded total time. On success it prints
``export KEYHOLE_PORT<i>=.. KEYHOLE_GATEWAY<i>=.. KEYHOLE_EXTERNAL_PORT<i>=..`` lines for the batch
script to ``eval``, and ``export KEYHOLE_SESSION_SECRET=..`` when the embedding handed it a session secret;
on a refusal or when it gives up it writes why to stderr (the job log) and exits non-zero. Run standalone,
it takes the token from ``KEYHOLE_TOKEN``. When the embedding hands it the service's CA (PEM), it speaks
HTTPS only, verifies the service's certificate and name against that CA, and refuses ``http://`` URLs.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shlex
import ssl
import sys
import time
import urllib.error
import urllib.request

# typing, not collections.abc: the alias below is evaluated at run time, on Pythons older than 3.9
from typing import Any, Callable, Mapping  # noqa: UP035

REQUEST_PATH = "/keyhole/v1/forwards"
SIGNATURE_CONTEXT = b"bwvisu-keyhole-v1\n"
MAX_HOSTS = 100000
TOO_MANY_HOSTS = "hostlist names more than {} hosts"
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4

_LITERAL = re.compile(r"[A-Za-z0-9._-]+")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_GATEWAY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*|[0-9A-Fa-f:.]+")


class KeyholeFailure(Exception):
    """Why the client stops; ``exit_code`` tells the batch script (and tests) which way."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- hostlist expansion (the one copy: runner.slurm.hostlist.expand maps its ValueError) ----------------
#
# The grammar follows Slurm's: a comma-separated list of host expressions (commas inside brackets do not
# separate), each a sequence of literal parts and bracket groups; a bracket group is a comma-separated list of
# numbers and ``lo-hi`` ranges. Several groups in one expression (``r[1-2]n[01-02]``) give their cartesian
# product, the leftmost group varying slowest. A range is zero-padded to the width of its lower bound, as Slurm
# does (``[08-10]`` -> ``08 09 10``, ``[8-10]`` -> ``8 9 10``). The count is checked before any name is built.


def _split_hostlist(hostlist: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(hostlist):
        if ch == "[":
            if depth:
                raise ValueError("nested '[' in hostlist")
            depth = 1
        elif ch == "]":
            if not depth:
                raise ValueError("unmatched ']' in hostlist")
            depth = 0
        elif ch == "," and not depth:
            items.append(hostlist[start:i])
            start = i + 1
    if depth:
        raise ValueError("unclosed '[' in hostlist")
    items.append(hostlist[start:])
    return items


def _parse_expression(expr: str) -> list[list[tuple[int, int, int]] | str]:
    if not expr:
        raise ValueError("empty host name in hostlist")
    if not (expr[0].isascii() and expr[0].isalnum()) and expr[0] != "[":
        raise ValueError("host name must start with a letter or digit: " + expr)
    parts: list[list[tuple[int, int, int]] | str] = []
    pos = 0
    while pos < len(expr):
        if expr[pos] == "[":
            end = expr.index("]", pos)
            group = []
            for item in expr[pos + 1 : end].split(","):
                m = _RANGE.fullmatch(item)
                if m is None:
                    raise ValueError("bad range in hostlist: " + item)
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else int(m.group(2))
                if hi < lo:
                    raise ValueError("backward range in hostlist: " + item)
                group.append((lo, hi, len(m.group(1))))
            parts.append(group)
            pos = end + 1
            continue
        lit = _LITERAL.match(expr, pos)
        if lit is None:
            raise ValueError("bad character in hostlist: " + expr)
        parts.append(lit.group(0))
        pos = lit.end()
    return parts


def expand_hostlist(hostlist: str, max_hosts: int = MAX_HOSTS) -> list[str]:
    """Host names of a Slurm hostlist, in order, each once; ``ValueError`` if malformed or too large."""
    if hostlist == "":
        return []
    expressions = [_parse_expression(e) for e in _split_hostlist(hostlist)]
    total = 0
    for parts in expressions:
        count = 1
        for part in parts:
            if not isinstance(part, str):
                count *= sum(hi - lo + 1 for lo, hi, _ in part)
        total += count
        if total > max_hosts:
            raise ValueError(TOO_MANY_HOSTS.format(max_hosts))
    hosts: dict[str, None] = {}
    for parts in expressions:
        names = [""]
        for part in parts:
            if isinstance(part, str):
                choices = [part]
            else:
                choices = [f"{n:0{width}d}" for lo, hi, width in part for n in range(lo, hi + 1)]
            names = [name + choice for name in names for choice in choices]
        for name in names:
            hosts[name] = None
    return list(hosts)


# --- signing (the one copy: runner.keyhole.protocol verifies with these) ----------------------------


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes the signature covers: the context line, then the fields as canonical JSON."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return SIGNATURE_CONTEXT + text.encode("ascii")


def sign(fields: Mapping[str, Any], token: str) -> str:
    """Hex HMAC-SHA256 of :func:`canonical_bytes` keyed with the job's token."""
    return hmac.new(token.encode("utf-8"), canonical_bytes(fields), hashlib.sha256).hexdigest()


def build_request(
    job_id: str, hostnames: list[str], ports: int, token: str, *, timestamp: int, nonce: str | None = None
) -> bytes:
    """A signed request body; a fresh random nonce unless one is given."""
    fields = {
        "job-id": job_id,
        "hostnames": hostnames,
        "ports": ports,
        "timestamp": timestamp,
        "nonce": nonce if nonce is not None else secrets.token_hex(16),
    }
    signed = dict(fields, signature=sign(fields, token))
    return json.dumps(signed, separators=(",", ":")).encode()


# --- the answer ---------------------------------------------------------------------------------


def _port(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ValueError(f"bad port in answer: {value!r}")
    return value


def parse_answer(body: bytes, ports: int) -> list[tuple[int, int, str]]:
    """``(internal port, external port, gateway)`` per forward; ``ValueError`` if the answer is not that."""
    obj = json.loads(body.decode("utf-8"))
    if not isinstance(obj, list) or len(obj) != ports:
        raise ValueError(f"expected a list of {ports} forwards")
    forwards = []
    for item in obj:
        fields = item if isinstance(item, dict) else {}
        gateway = fields.get("gateway")
        if not isinstance(gateway, str) or _GATEWAY.fullmatch(gateway) is None:
            raise ValueError(f"bad gateway in answer: {gateway!r}")
        forwards.append((_port(fields.get("internal-port")), _port(fields.get("external-port")), gateway))
    return forwards


def retry_after(body: bytes) -> float | None:
    """The ``retry-after`` seconds of a 429 refusal body, if it names a sane one."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    value = obj.get("retry-after") if isinstance(obj, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600:
        return float(value)
    return None


def refusal_text(body: bytes) -> str | None:
    """``"message (code)"`` if the body is a refusal ``{error, message}``, else ``None``."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str) and isinstance(obj.get("message"), str):
        return f"{obj['message']} ({obj['error']})"
    return None


def export_lines(forwards: list[tuple[int, int, str]], session_secret: str | None = None) -> str:
    """The shell lines the batch script evaluates."""
    lines = "".join(
        f"export KEYHOLE_PORT{i}={internal} KEYHOLE_GATEWAY{i}={shlex.quote(gateway)}"
        f" KEYHOLE_EXTERNAL_PORT{i}={external}\n"
        for i, (internal, external, gateway) in enumerate(forwards)
    )
    if session_secret:
        lines += f"export KEYHOLE_SESSION_SECRET={shlex.quote(session_secret)}\n"
    return lines


# --- sending ------------------------------------------------------------------------------------

Post = Callable[[str, bytes, float], "tuple[int, bytes]"]


def https_context(ca_pem: str) -> ssl.SSLContext:
    """Verification against ``ca_pem`` only (not the system's CAs), with the host name checked."""
    return ssl.create_default_context(cadata=ca_pem)


def http_post(url: str, body: bytes, timeout: float, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """POST JSON; the HTTP status and body, also for 4xx/5xx. Never uses a proxy from the environment.

    With ``context`` only ``https://`` URLs are accepted, verified against it.
    """
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        if not url.startswith("https://"):
            raise ValueError(f"refusing plain HTTP: the keyhole service must be reached over HTTPS: {url}")
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP(S) URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), bytes(exc.read())


def send(
    body: bytes,
    urls: list[str],
    *,
    deadline: float,
    initial_delay: float = 0.5,
    max_delay: float = 10.0,
    attempt_timeout: float = 15.0,
    post: Post = http_post,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    log: Callable[[str], None] = lambda line: None,
) -> bytes:
    """Send ``body`` to the URLs in turn until one answers 2xx; retry on errors and 5xx until ``deadline``.

    ``deadline`` is seconds from now. A 429 (the job must wait) is retried after the wait it names; any other
    4xx answer stops at once with its refusal message.
    """
    if not urls:
        raise KeyholeFailure("no keyhole service URL given", EXIT_BAD_INPUT)
    end = clock() + deadline
    delay = initial_delay
    last = "no attempt made"
    for attempt in range(100000):  # bounded; the deadline ends it long before
        url = urls[attempt % len(urls)].rstrip("/") + REQUEST_PATH
        remaining = end - clock()
        wait: float | None = None
        try:
            status, answer = post(url, body, max(0.1, min(attempt_timeout, remaining)))
        except (OSError, ValueError) as exc:  # URLError, refused, reset, timeout, bad status line
            last = f"{url} unreachable: {getattr(exc, 'reason', exc)}"
        else:
            if 200 <= status < 300:
                return answer
            reason = refusal_text(answer) or f"HTTP {status}"
            wait = retry_after(answer) if status == 429 else None
            if status < 500 and wait is None:
                raise KeyholeFailure("the keyhole service refused the request: " + reason, EXIT_REFUSED)
            last = f"{url} answered {reason}"
        pause = min(delay, max_delay) * (0.5 + rand() / 2)
        if wait is not None:
            pause = wait + pause / 4  # what the service asked for, spread a little
        if clock() + pause >= end:
            break
        log(f"keyhole: {last}; retrying in {pause:.1f}s")
        sleep(pause)
        delay *= 2
    raise KeyholeFailure(f"gave up after {deadline:g}s: {last}", EXIT_UNREACHABLE)


def request_forwards(
    job_id: str, ports: int, urls: list[str], environ: Mapping[str, str], token: str | None, **send_options: Any
) -> list[tuple[int, int, str]]:
    """Expand the node list, sign, send and read the answer; :class:`KeyholeFailure` says why not."""
    if not token:
        raise KeyholeFailure("no keyhole token", EXIT_BAD_INPUT)
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not nodelist:
        raise KeyholeFailure("neither SLURM_JOB_NODELIST nor SLURM_NODELIST is set", EXIT_BAD_INPUT)
    try:
        hostnames = expand_hostlist(nodelist)
    except ValueError as exc:
        raise KeyholeFailure(f"cannot parse the node list {nodelist!r}: {exc}", EXIT_BAD_INPUT) from None
    body = build_request(job_id, hostnames, ports, token, timestamp=int(time.time()), nonce=secrets.token_hex(16))
    answer = send(body, urls, **send_options)
    try:
        return parse_answer(answer, ports)
    except ValueError as exc:
        raise KeyholeFailure(f"unusable answer from the keyhole service: {exc}", EXIT_REFUSED) from None


def _tls_options(urls: list[str], ca_pem: str | None) -> dict[str, Any]:
    """With a CA: a ``post`` that verifies against it; every URL must be HTTPS (no fallback to plain HTTP)."""
    if ca_pem is None:
        return {}
    plain = [u for u in urls if not u.startswith("https://")]
    if plain:
        raise KeyholeFailure(f"refusing plain HTTP to the keyhole service: {', '.join(plain)}", EXIT_BAD_INPUT)
    context = https_context(ca_pem)
    post: Post = lambda url, body, timeout: http_post(url, body, timeout, context)  # noqa: E731
    return {"post": post}


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(
    argv: list[str],
    environ: Mapping[str, str],
    token: str | None = None,
    session_secret: str | None = None,
    ca_pem: str | None = None,
) -> int:
    """Request forwards; print export lines on success, else a message on stderr. The exit status."""
    parser = argparse.ArgumentParser(prog="keyhole-client", description="Ask the keyhole service for ports.")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--ports", type=int, required=True)
    parser.add_argument("--url", action="append", required=True, help="keyhole service base URL (repeat)")
    parser.add_argument("--deadline", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--initial-delay", type=float, default=0.5)
    parser.add_argument("--max-delay", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        tls = _tls_options(args.url, ca_pem)
        forwards = request_forwards(
            args.job_id,
            args.ports,
            args.url,
            environ,
            token if token is not None else environ.get("KEYHOLE_TOKEN"),
            deadline=args.deadline,
            initial_delay=args.initial_delay,
            max_delay=args.max_delay,
            log=_log,
            **tls,
        )
    except KeyholeFailure as failure:
        _log(f"keyhole: {failure}")
        return failure.exit_code
    sys.stdout.write(export_lines(forwards, session_secret))
    return 0


# Fed through ``python3 -`` (argv[0] == "-"), the embedding appends its own call with the token.
if __name__ == "__main__" and sys.argv[0] != "-":
    sys.exit(main(sys.argv[1:], os.environ))
