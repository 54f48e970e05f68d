"""Expansion of the ``#KEYHOLE-REQUEST-PORTS N`` template line into the shell snippet that runs the client.

The snippet feeds the stdlib-only client (:mod:`runner.keyhole.client`) to ``python3 -`` through a
heredoc with a quoted delimiter, so the shell expands nothing inside it; the last line of the heredoc
calls the client with the job's token and session secret. Both therefore travel only inside the batch script
piped to ``sbatch`` and the heredoc pipe (the client is kept well under the 64 KiB up to which bash uses a
pipe, not a temporary file): never in a file of the user's or an argument list. The client's output is
``eval``-ed; if it fails, the job stops with a message in its log. On success the output also exports
``KEYHOLE_SESSION_SECRET``, so the job's application can demand it (in the job's environment, which only
the job's owner can read, never on a command line).

Call this on the *rendered* template (after mustache): the client source is not template text.
The snippet is POSIX shell, so ``#!/bin/sh`` templates work as well as bash ones.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources
from typing import TypedDict, Unpack

from runner.errors import KeyholeTemplateError
from runner.records import JOB_ID

DIRECTIVE = "#KEYHOLE-REQUEST-PORTS"
HEREDOC_DELIMITER = "KEYHOLE_CLIENT_EOF"

MAX_DIRECTIVE_PORTS = 65535  # a gateway has no more; the configured per-job limit is checked at submission
_DIRECTIVE_LINE = re.compile(r"[ \t]*#KEYHOLE-REQUEST-PORTS[ \t]+([0-9]+)[ \t]*")
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")  # URL-safe: it goes into session URLs and shell words unquoted
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]+")


@cache
def client_source() -> str:
    """The client's source text, exactly as shipped in the package."""
    return resources.files("runner.keyhole").joinpath("client.py").read_text(encoding="utf-8")


def keyhole_snippet(
    *,
    job_id: str,
    token: str,
    session_secret: str,
    service_urls: list[str],
    ports: int,
    deadline_seconds: float = 120.0,
    initial_delay: float = 0.5,
    ca_pem: str | None = None,
) -> str:
    """The shell text that replaces the directive line (ends with a newline).

    With ``ca_pem`` (the keyhole service's CA, PEM) the client verifies the service against it and refuses
    plain HTTP; every URL must then be ``https``.
    """
    if JOB_ID.fullmatch(job_id) is None:
        raise ValueError(f"job id {job_id!r} is not safe to embed")
    if _TOKEN.fullmatch(token) is None:
        raise ValueError("token has an unexpected form")  # never echo the token itself
    if _SECRET.fullmatch(session_secret) is None:
        raise ValueError("session secret has an unexpected form")
    if not service_urls or any(_URL.fullmatch(u) is None for u in service_urls):
        raise ValueError(f"keyhole service URLs must be http(s) URLs: {service_urls!r}")
    if ca_pem is not None and (not ca_pem.isascii() or "'" in ca_pem or "\\" in ca_pem):
        raise ValueError("the keyhole CA is not plain PEM text")
    if ca_pem is not None and any(not u.startswith("https://") for u in service_urls):
        raise ValueError(f"with a CA, keyhole service URLs must be https: {service_urls!r}")
    argv = ["python3", "-", "--job-id", job_id, "--ports", str(ports)]
    for url in service_urls:
        argv += ["--url", url]
    argv += ["--deadline", repr(float(deadline_seconds)), "--initial-delay", repr(float(initial_delay))]
    source = client_source()
    if not source.endswith("\n"):
        source += "\n"
    # repr() of a string from a restricted alphabet is a plain Python string literal
    ca = f", ca_pem={ca_pem!r}" if ca_pem is not None else ""
    call = f"sys.exit(main(sys.argv[1:], os.environ, {token!r}, session_secret={session_secret!r}{ca}))\n"
    body = source + call
    if any(line == HEREDOC_DELIMITER for line in body.splitlines()):
        raise ValueError("heredoc delimiter occurs in the client source")
    return (
        f"# keyhole: request {ports} forwarded port(s) for this job\n"
        f"KEYHOLE_EXPORTS=$({shlex.join(argv)} <<'{HEREDOC_DELIMITER}'\n"
        f"{body}"
        f"{HEREDOC_DELIMITER}\n"
        ') || { echo "keyhole: no forwarded ports for this job; stopping" >&2; exit 1; }\n'
        'eval "$KEYHOLE_EXPORTS"\n'
        "unset KEYHOLE_EXPORTS\n"
    )


def find_directive(text: str) -> tuple[int, int] | None:
    """``(index, N)`` of the one ``#KEYHOLE-REQUEST-PORTS N`` line (index into ``text.split("\\n")``), or None.

    The one rule, used by the template store and by the expansion here: every line that starts with the
    directive after leading whitespace *is* the directive (``#KEYHOLE-REQUEST-PORTSX`` is a malformed one, not a
    comment), it may appear once, and it must read ``#KEYHOLE-REQUEST-PORTS N`` with blanks (space, tab) around
    and ``N`` from 1 to :data:`MAX_DIRECTIVE_PORTS`. Lines are the shell's (split on ``\\n``): a CRLF line is
    refused, since the shell would keep the carriage return. Raises ``ValueError`` saying which line and why.
    """
    found = [i for i, line in enumerate(text.split("\n")) if line.lstrip().startswith(DIRECTIVE)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{DIRECTIVE} may appear only once (lines {', '.join(str(i + 1) for i in found)})")
    index = found[0]
    line = text.split("\n")[index]
    if line.endswith("\r"):
        raise ValueError(f"line {index + 1}: {DIRECTIVE} ends in a carriage return; use LF line endings")
    m = _DIRECTIVE_LINE.fullmatch(line)
    if m is None:
        raise ValueError(f"line {index + 1}: expected '{DIRECTIVE} N' with N a positive integer")
    digits = m.group(1).lstrip("0")
    if not digits or len(digits) > len(str(MAX_DIRECTIVE_PORTS)) or int(digits) > MAX_DIRECTIVE_PORTS:
        raise ValueError(f"line {index + 1}: {DIRECTIVE} needs N from 1 to {MAX_DIRECTIVE_PORTS}")
    return index, int(digits)


def requested_ports(script: str, *, max_ports: int) -> int | None:
    """The ``N`` of the script's directive line (:func:`find_directive`), ``None`` without one; checks the limit."""
    try:
        found = find_directive(script)
    except ValueError as exc:
        raise KeyholeTemplateError(str(exc)) from None
    if found is None:
        return None
    index, ports = found
    if ports > max_ports:
        raise KeyholeTemplateError(
            f"line {index + 1}: {DIRECTIVE} asks for {ports} ports; allowed are 1 to {max_ports}"
        )
    return ports


class SnippetTuning(TypedDict, total=False):
    """The optional arguments of :func:`keyhole_snippet`, passed on by :func:`expand_keyhole_request`."""

    deadline_seconds: float
    initial_delay: float
    ca_pem: str | None


def expand_keyhole_request(
    script: str,
    *,
    job_id: str,
    token: str,
    session_secret: str,
    service_urls: list[str],
    max_ports: int,
    **tuning: Unpack[SnippetTuning],
) -> str:
    """Replace the script's ``#KEYHOLE-REQUEST-PORTS N`` line with the client snippet.

    A script without the line comes back unchanged. Raises :class:`KeyholeTemplateError` for a repeated
    or malformed line or ``N`` outside ``1..max_ports``, and ``ValueError`` for unsafe arguments.
    """
    ports = requested_ports(script, max_ports=max_ports)
    if ports is None:
        return script
    snippet = keyhole_snippet(
        job_id=job_id, token=token, session_secret=session_secret, service_urls=service_urls, ports=ports, **tuning
    )
    lines = script.split("\n")
    found = find_directive(script)
    if found is None:  # requested_ports found it; never taken
        return script
    lines[found[0]] = snippet.removesuffix("\n")
    return "\n".join(lines)
