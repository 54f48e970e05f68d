"""SSH material for a testbed: the runner's client key pair and a known_hosts file built from the nodes' keys."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientKey:
    """An unencrypted ed25519 key pair on disk (mode 0600), as ``ssh -i`` and asyncssh take it."""

    private_path: Path
    public_line: str

    @property
    def private_text(self) -> str:
        return self.private_path.read_text()


def generate_client_key(directory: Path, comment: str = "bwvisu-testbed-runner") -> ClientKey:
    """Generate a key pair in ``directory`` with ``ssh-keygen`` (from openssh-client)."""
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
        check=True,
        capture_output=True,
    )
    public = private.with_suffix(".pub").read_text().strip()
    return ClientKey(private, public)


def known_hosts_line(hosts: list[str], host_key_line: str) -> str:
    """One known_hosts line: ``[host]:port`` patterns for non-22 ports, then the key type and key."""
    key_type, key_b64 = host_key_line.split()[:2]
    return f"{','.join(hosts)} {key_type} {key_b64}"


def host_pattern(host: str, port: int) -> str:
    """How OpenSSH and asyncssh name ``host:port`` in known_hosts."""
    return host if port == 22 else f"[{host}]:{port}"
