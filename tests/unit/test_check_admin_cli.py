"""``runner check`` and ``runner jobs``: their table and their refusals before touching any network."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.__main__ import main
from runner.check import CheckResult, format_table

pytestmark = pytest.mark.unit


def test_table_aligns_columns_and_says_fail_and_skip() -> None:
    text = format_table(
        [
            CheckResult("ssh", "bwvisu@10.0.0.1:22", True, "connected"),
            CheckResult("sudo-as-user", "bwvisu@10.0.0.1:22", None, "give --as-user USER to check"),
            CheckResult("etcd", "10.0.0.9:2379", False, "no answer within 5s"),
        ]
    )
    header, *rows = text.splitlines()
    assert header.split() == ["CHECK", "NODE", "RESULT", "DETAIL"]
    assert [row.split(None, 3)[2:] for row in rows] == [
        ["ok", "connected"],
        ["skip", "give --as-user USER to check"],
        ["FAIL", "no answer within 5s"],
    ]
    assert len({row.index(row.split()[2]) for row in rows}) == 1  # the result column starts at one place


def test_check_with_a_missing_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nope.json" in err
    assert "Traceback" not in err


def test_jobs_password_file_unreadable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["jobs", "--url", "http://127.0.0.1:9", "--user", "u", "--password-file", str(tmp_path / "none"), "list"]
    assert main(argv) == 2
    assert "cannot read --password-file" in capsys.readouterr().err
