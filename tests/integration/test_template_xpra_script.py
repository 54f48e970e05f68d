"""The xpra example template run in bash, as a job runs it: the session secret reaches xpra in a private file only,
on no command line and in no environment it leaves behind; without a secret it refuses to start a session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.templates import TemplateStore
from tests.hostile_inputs import VALID_VARIABLES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EXAMPLES = Path(__file__).resolve().parents[2] / "runner" / "templates"


FAKE_XPRA = """#!/bin/bash
# stands for xpra: what it was given, as the real one would see it
pw=${3#--tcp-auth=file:filename=}
{
  printf 'argv=%s\\n' "$*"
  printf 'password=%s|\\n' "$(cat "$pw")"
  printf 'modes=%s %s\\n' "$(stat -c %a "$pw")" "$(stat -c %a "$(dirname "$pw")")"
  printf 'env=%s\\n' "$(env | grep -c KEYHOLE_SESSION_SECRET)"
  printf 'dir=%s\\n' "$(dirname "$pw")"
} >"$XPRA_REPORT"
"""


@pytest.mark.parametrize("secret", ["c2Vzc2lvbi1zZWNyZXQ_b2Yt-am9i", ""])
def test_xpra_template_hands_the_secret_to_xpra_in_a_private_file_only(tmp_path: Path, secret: str) -> None:
    script = TemplateStore(EXAMPLES).render("template_xpra.txt", VALID_VARIABLES)
    # what the keyhole line becomes once the client got its answer
    exports = f"export KEYHOLE_PORT0=50001 KEYHOLE_SESSION_SECRET={secret}"
    script = script.replace("#KEYHOLE-REQUEST-PORTS 1", exports)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "xpra").write_text(FAKE_XPRA)
    (tmp_path / "bin" / "xpra").chmod(0o755)
    report = tmp_path / "report"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    env["XPRA_REPORT"] = str(report)
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)
    if not secret:
        assert done.returncode == 1
        assert "refusing to open an unprotected session" in done.stderr
        assert not report.exists()
        return
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in report.read_text().splitlines())
    assert secret not in lines["argv"]  # on no command line
    assert "--bind-tcp=0.0.0.0:50001 --tcp-auth=file:filename=" in lines["argv"]
    assert lines["password"] == secret + "|"  # exactly the secret, no newline
    assert lines["modes"] == "600 700"
    assert lines["env"] == "0"  # the session's processes do not inherit it
    assert not Path(lines["dir"]).exists()  # removed when the session ends
