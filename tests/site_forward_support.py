"""What the gateway helper's tests share (``bwvisu_site.gateway.bwvisu_forward``): limits, a rule, restore input and
a configuration file written as the helper expects it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from bwvisu_site.gateway import bwvisu_forward as fwd
from runner.gateway.iptables import ForwardRule

LIMITS = fwd.Limits(50000, 60000, (ipaddress.IPv4Network("10.10.0.0/16"), ipaddress.IPv4Network("10.20.1.0/24")))
RULE = ForwardRule("job-1", 50001, "10.10.3.4", 5901)


def restore_text(*lines: str) -> bytes:
    return ("\n".join(["*nat", *lines, "COMMIT"]) + "\n").encode()


def write_config(folder: Path, text: str, mode: int = 0o644) -> Path:
    path = folder / "forward.conf"
    path.write_text(text)
    path.chmod(mode)
    return path
