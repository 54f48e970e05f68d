"""Logging options: the runner's level apart from the libraries', accepted after the subcommand, JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from runner import logs
from runner.__main__ import _parser

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    own = {name: logging.getLogger(name).level for name in logs.OWN_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in own.items():
        logging.getLogger(name).setLevel(value)


def test_libraries_are_quiet_by_default_and_the_runner_is_not() -> None:
    out = io.StringIO()
    logs.configure(stream=out)
    logging.getLogger("asyncssh").info("[conn=0] Accepted SSH client connection")
    logging.getLogger("simulator.cluster").info("simulated cluster started")
    logging.getLogger("runner.state").info("job j1 (user alice): submitted -> running")
    logging.getLogger("asyncssh").warning("connection lost")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "INFO runner.state: job j1 (user alice): submitted -> running" in lines[0]
    assert "WARNING asyncssh: connection lost" in lines[1]


def test_library_level_is_separate() -> None:
    out = io.StringIO()
    logs.configure("WARNING", "DEBUG", stream=out)
    logging.getLogger("asyncssh").debug("channel opened")
    logging.getLogger("runner.jobs").info("not shown")
    assert out.getvalue().count("\n") == 1
    assert "asyncssh: channel opened" in out.getvalue()


def test_json_lines_carry_context() -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    logging.getLogger("runner.jobs").info("job %s submitted", "j1", extra={"job": "j1", "user": "alice"})
    try:
        int("boom")
    except ValueError:
        logging.getLogger("runner.loops").exception("loop failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == "runner.jobs"
    assert first["message"] == "job j1 submitted"
    assert (first["job"], first["user"]) == ("j1", "alice")
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR"
    assert "ValueError: invalid literal for int() with base 10: 'boom'" in second["exception"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "DEBUG", "--log-format", "json", "dev"],
        ["dev", "--log-level", "DEBUG", "--log-format", "json"],
        ["--log-format", "json", "dev", "--log-level", "DEBUG"],
    ],
)
def test_log_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    assert (args.command, args.log_level, args.log_format, args.library_log_level) == (
        "dev",
        "DEBUG",
        "json",
        "WARNING",
    )


def test_defaults_when_no_option_is_given() -> None:
    args = _parser().parse_args(["serve"])
    assert (args.log_level, args.library_log_level, args.log_format) == ("INFO", "WARNING", "text")


def test_unknown_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["dev", "--log-level", "LOUD"])
    assert exc.value.code == 2
    assert "invalid choice: 'LOUD'" in capsys.readouterr().err
