"""The command-node helper (``bwvisu-slurm-as``) run as a process by root: it becomes the user for good (uid, gid,
groups, home, a clean environment) and hands its stdin to the Slurm command."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwvisu_site.command import bwvisu_slurm_as as helper

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def installed() -> Iterator[Path]:
    """A readable-by-all folder with the helper, its config (min-uid 1: daemon counts as ordinary) and a fake squeue."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "bin").mkdir(mode=0o755)
        fake = root / "bin" / "sbatch"
        fake.write_text('#!/bin/sh\necho "$(id -u) $(id -g) $(id -G) $(pwd) $*"\nenv | sort\ncat\n')
        fake.chmod(0o755)
        (root / "etc").mkdir(mode=0o755)
        config = root / "etc" / "slurm-as.conf"
        config.write_text(helper.render_config(helper.Policy(1, frozenset({"bwvisu"}), slurm_bin=str(root / "bin"))))
        config.chmod(0o644)
        yield config


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")
def test_it_becomes_the_user_for_good_and_keeps_stdin(installed: Path) -> None:
    script = (
        "import sys, pathlib; from bwvisu_site.command import bwvisu_slurm_as as h; "
        f"sys.exit(h.main(config=pathlib.Path({str(installed)!r})))"
    )
    env = {"PATH": "/usr/bin:/bin", "SECRET": "x", "SUDO_USER": "carol", "PYTHONPATH": str(Path(__file__).parents[2]),
           "LANG": "C.UTF-8"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script, "daemon", "sbatch", "--parsable"],
        input="the batch script\n", capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0] == "1 1 1 /usr/sbin --parsable"  # uid, gid, only daemon's groups, in daemon's home
    assert lines[1:-1] == [
        "HOME=/usr/sbin", "LANG=C.UTF-8", "LOGNAME=daemon", "MAIL=/var/mail/daemon",
        "PATH=/usr/local/bin:/usr/bin:/bin", "PWD=/usr/sbin", "SHELL=/usr/sbin/nologin", "USER=daemon",
    ]  # fmt: skip
    assert lines[-1] == "the batch script"
