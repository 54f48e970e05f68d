"""``python -m runner`` as a real child process: its output collected line by line, signals sent to it or to
its whole process group (as a terminal's Ctrl-C does), its children found with psutil."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psutil

API_PASSWORD = "process-test-password"
_URL = re.compile(r"runner API:\s+(\S+)")


class RunnerProcess:
    """``python -m runner ARGS`` in its own process session, with stdout and stderr merged into :attr:`lines`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.argv = [sys.executable, "-m", "runner", *args]
        # dev's frontend password is known to the tests; serve's comes from its config file
        password = {"RUNNER_API__PASSWORD": API_PASSWORD} if args[:1] == ("dev",) else {}
        self._env = {**os.environ, **password, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._cwd = cwd
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> RunnerProcess:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, found: Callable[[list[str]], bool], what: str, timeout: float = 60) -> None:
        """Until ``found(lines)`` holds; fails naming ``what`` and the output if the process exits first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not found(self.lines):
                assert self.proc is not None
                if self.proc.poll() is not None and not (self._reader and self._reader.is_alive()):
                    raise AssertionError(f"runner exited ({self.proc.returncode}) before {what}:\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def url(self) -> str:
        """The API URL from the start banner (waits for it)."""
        self.wait_for(lambda lines: any(_URL.search(line) for line in lines), "start banner")
        match = next(m for line in self.lines if (m := _URL.search(line)))
        return match.group(1)

    def children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def signal_group(self, sig: signal.Signals) -> None:
        """``sig`` to every process of the runner's process group, as a terminal sends Ctrl-C."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def __enter__(self) -> RunnerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for child in self.children():
                child.kill()
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
