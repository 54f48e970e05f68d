"""Checks at the start of ``serve``, before anything connects: can these settings work on a real cluster at all?

Validation (:mod:`runner.config`) says whether the file is well formed; the preflight says whether the runner
could do its work with it: nodes to run Slurm commands and forwards on, SSH keys and host keys it can read,
an API password, TLS files it can read. Each problem is one line naming the field (bwVisu's spelling) and
what is wrong, so ``serve`` and ``config check`` can fail with a line an admin can act on instead of a
"gateway marked down" minutes later. Nothing here talks to the network (``runner check`` does that).
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from runner.config import Settings
from runner.errors import PreflightFailed

# asyncssh's default client keys, tried when ssh.client-keys is empty (besides an SSH agent).
_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


def _unreadable(field: str, path: Path, what: str = "file") -> str | None:
    """A problem if ``path`` cannot be read as a file (opened and read, not guessed from permission bits)."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"{field}: cannot read {what} {path}: {exc.strerror or exc}"
    return None


def _key_problems(settings: Settings) -> list[str]:
    keys = settings.ssh.client_keys
    if not keys:
        home = Path("~/.ssh").expanduser()
        if os.environ.get("SSH_AUTH_SOCK") or any((home / name).is_file() for name in _DEFAULT_KEYS):
            return []
        defaults = ", ".join(f"~/.ssh/{name}" for name in _DEFAULT_KEYS)
        return [f"ssh.client-keys: none given, and neither a default key ({defaults}) nor an SSH agent found"]
    problems: list[str] = []
    for i, key in enumerate(keys):
        field = f"ssh.client-keys.{i}"
        if (problem := _unreadable(field, key, "private key")) is not None:
            problems.append(problem)
            continue
        try:
            asyncssh.read_private_key(key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            problems.append(f"{field}: {key} is not a usable private key ({exc})")
    return problems


def _known_hosts_problems(settings: Settings) -> list[str]:
    known_hosts = settings.ssh.known_hosts
    if known_hosts is None:
        return [
            "ssh.known-hosts: not set; serve needs a known_hosts file holding the cluster nodes' host keys "
            "(they are always checked)"
        ]
    problem = _unreadable("ssh.known-hosts", known_hosts)
    return [] if problem is None else [problem]


def preflight(settings: Settings) -> list[str]:
    """Every reason ``serve`` could not work with ``settings``, one line each; empty when it could."""
    problems: list[str] = []
    if not settings.command_nodes:
        problems.append("command-nodes: none configured; serve needs at least one node to run Slurm commands on")
    if not settings.gateway_nodes:
        problems.append("gateway-nodes: none configured; serve needs at least one gateway to forward ports on")
    if not settings.keyholed_servers:
        problems.append("keyholed-servers: none configured; jobs need an address to reach the keyhole service at")
    problems += _key_problems(settings)
    problems += _known_hosts_problems(settings)
    if not settings.api.password.get_secret_value():
        problems.append("api.password: not set; give it in the file or as RUNNER_API__PASSWORD")
    for section, name in (("api", settings.api), ("keyhole", settings.keyhole)):
        for key in ("tls_cert", "tls_key", "tls_ca"):
            path = getattr(name, key, None)
            if path is not None and (problem := _unreadable(f"{section}.{key.replace('_', '-')}", path)):
                problems.append(problem)
    if not settings.templates_dir.is_dir():
        problems.append(f"templates-dir: {settings.templates_dir} is not a folder")
    return problems


def require_preflight(settings: Settings) -> None:
    """Raise :class:`PreflightFailed` listing every problem :func:`preflight` finds."""
    if problems := preflight(settings):
        raise PreflightFailed(problems)
