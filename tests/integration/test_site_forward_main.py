"""The gateway helper's ``main`` (``bwvisu-forward``) with a recording fake iptables: the checked text reaches
iptables-restore, refusals run nothing, the config must be safe, and edits serialise on a lock."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from bwvisu_site.gateway import bwvisu_forward as fwd
from runner.gateway import commands
from tests.site_forward_support import LIMITS, RULE, restore_text, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


FAKE_IPTABLES = """#!/bin/sh
# records each call (and restore input); -S/-C answer from the files the test leaves in $STATE
echo "$0 $*" >> "{state}/calls"
case "$*" in
  *--noflush*) cat >> "{state}/restored"; exit "$(cat {state}/restore-status 2>/dev/null || echo 0)";;
  "-t nat -S "*) [ -e "{state}/chain-$4" ] && echo "-N $4" && exit 0; echo "iptables: No chain" >&2; exit 1;;
  "-t nat -C "*) [ -e "{state}/jump-$6" ] && exit 0; exit 1;;
esac
exit 9
"""


@pytest.fixture
def gateway(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose iptables programs are a recording fake; returns (config, state folder)."""
    state = tmp_path / "state"
    state.mkdir()
    fake = tmp_path / "iptables"
    fake.write_text(FAKE_IPTABLES.format(state=state))
    fake.chmod(stat.S_IRWXU)
    limits = fwd.Limits(50000, 60000, LIMITS.networks, iptables=str(fake), iptables_restore=str(fake))
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    return write_config(etc, fwd.render_config(limits)), state


def run_main(gateway: tuple[Path, Path], argv: list[str], stdin: bytes = b"") -> int:
    config, state = gateway
    return fwd.main(argv, config=config, stdin=io.BytesIO(stdin), lock=state / "lock")


def calls(state: Path) -> list[str]:
    path = state / "calls"
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()] if path.exists() else []


def test_main_restore_hands_the_checked_text_to_iptables_restore(
    gateway: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    text = commands.edit_input(add=[RULE])
    assert run_main(gateway, ["restore"], text.encode()) == 0
    assert calls(gateway[1]) == ["--noflush"]
    assert (gateway[1] / "restored").read_text() == text
    (gateway[1] / "restore-status").write_text("1")
    assert run_main(gateway, ["restore"], text.encode()) == 1  # iptables' own status passes through
    assert capfd.readouterr().err == ""


def test_main_refuses_before_running_anything(gateway: tuple[Path, Path], capfd: pytest.CaptureFixture[str]) -> None:
    assert run_main(gateway, ["restore"], restore_text("-F")) == fwd.EXIT_REFUSED
    assert capfd.readouterr().err == (
        "bwvisu-forward: refused: line 2: command '-F' is not allowed: only -A and -D of the runner's rules\n"
    )
    assert run_main(gateway, ["list", "INPUT"]) == fwd.EXIT_REFUSED
    assert (
        capfd.readouterr().err == "bwvisu-forward: refused: chain 'INPUT' is not the runner's (BWVISU, BWVISU-POST)\n"
    )
    assert run_main(gateway, ["save", "-f", "/tmp/x"]) == fwd.EXIT_USAGE
    assert capfd.readouterr().err.startswith("bwvisu-forward: refused: usage: bwvisu-forward ensure-chains | list")
    assert calls(gateway[1]) == []
    assert not (gateway[1] / "lock").exists()


def test_main_without_a_safe_config_refuses(gateway: tuple[Path, Path], capfd: pytest.CaptureFixture[str]) -> None:
    config, state = gateway
    config.chmod(0o666)
    assert run_main(gateway, ["ensure-chains"]) == fwd.EXIT_CONFIG
    assert "bwvisu-forward: configuration: " in capfd.readouterr().err
    assert fwd.main(["ensure-chains"], config=state / "none.conf", lock=state / "lock") == fwd.EXIT_CONFIG
    assert calls(state) == []


def test_main_list_and_ensure_chains(gateway: tuple[Path, Path], capfd: pytest.CaptureFixture[str]) -> None:
    state = gateway[1]
    (state / "chain-BWVISU").touch()
    assert run_main(gateway, ["list", "BWVISU"]) == 0
    assert capfd.readouterr().out == "-N BWVISU\n"
    assert run_main(gateway, ["list", "BWVISU-POST"]) == 1
    assert capfd.readouterr() == ("", "iptables: No chain\n")
    (state / "calls").unlink()
    assert run_main(gateway, ["ensure-chains"]) == 0
    assert calls(state) == [
        "-t nat -S BWVISU", "-t nat -C PREROUTING -j BWVISU", "-t nat -S BWVISU-POST", "--noflush",
    ]  # fmt: skip
    assert (state / "restored").read_text() == (
        "*nat\n:BWVISU-POST - [0:0]\n-I PREROUTING 1 -j BWVISU\n-I POSTROUTING 1 -j BWVISU-POST\nCOMMIT\n"
    )
    assert capfd.readouterr() == ("", "")
    assert (state / "lock").exists()
    assert stat.S_IMODE(os.stat(state / "lock").st_mode) == 0o600


def test_a_held_lock_makes_edits_wait_then_give_up(gateway: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    state = gateway[1]
    monkeypatch.setattr(fwd, "LOCK_WAIT_SECONDS", 0.2)
    with fwd._locked(state / "lock"):
        assert run_main(gateway, ["restore"], commands.edit_input(add=[RULE]).encode()) == fwd.EXIT_BUSY
    assert calls(state) == []
    assert run_main(gateway, ["restore"], commands.edit_input(add=[RULE]).encode()) == 0
