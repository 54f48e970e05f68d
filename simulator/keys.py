"""Generated SSH keys for a simulated cluster: one client key, one host key per node, a known_hosts file."""

from __future__ import annotations

from pathlib import Path

import asyncssh


def new_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def write_client_key(directory: Path, key: asyncssh.SSHKey) -> Path:
    """Write ``id_ed25519`` (mode 600) and ``id_ed25519.pub``; return the private key's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "id_ed25519"
    key.write_private_key(str(path))
    path.chmod(0o600)
    key.write_public_key(str(path) + ".pub")
    return path


def known_hosts_line(names: list[str], port: int, key: asyncssh.SSHKey) -> str:
    """One OpenSSH known_hosts line for ``names`` on ``port`` (``[name]:port`` unless port 22)."""
    hosts = ",".join(name if port == 22 else f"[{name}]:{port}" for name in names)
    public = key.convert_to_public().export_public_key("openssh").decode().split()
    return f"{hosts} {public[0]} {public[1]}"
