"""A runner in its own process, driven over stdin/stdout, so its CPU time and RSS are measured alone.

The simulated cluster and etcd stay with the caller (:class:`RunnerProcess`); the child (``python -m
benchmarks.runner_process``) reads the runner's settings as the first JSON line on stdin, starts a
:class:`~runner.app.Runner` with an idle job watcher, and then answers one JSON line per request:

- ``{"op": "tick"}``: one :meth:`JobWatcher.tick`, with the Slurm commands it sent (``CommandNodes.calls``),
  the bytes of ``squeue`` output it parsed, its CPU time (``time.process_time``) and wall time, and whether it
  read every active record from etcd (its view's watch was started, or lost);
- ``{"op": "sweep"}``: one keyhole-watcher sweep (:meth:`KeyholeWatcher.tick`), its CPU and wall time;
- ``{"op": "rss"}``: the process's resident set size after a garbage collection;
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from benchmarks.common import first_tick_done
from runner.app import Runner
from runner.config import settings_from_mapping
from runner.ssh import CommandOutput, CommandRunner, SshNode

ROOT = Path(__file__).resolve().parent.parent


class MeasuredNode(SshNode):
    """An :class:`SshNode` that adds up the stdout bytes each command name returned."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stdout_bytes: dict[str, int] = {}

    async def run(self, argv: list[str], stdin: str | None = None, timeout: float | None = None) -> CommandOutput:
        out = await super().run(argv, stdin, timeout)
        name = argv[0] if argv else ""
        self.stdout_bytes[name] = self.stdout_bytes.get(name, 0) + len(out.stdout.encode())
        return out


def rss_mb() -> float:
    gc.collect()
    return round(psutil.Process().memory_info().rss / 2**20, 1)


async def child(config: dict[str, Any]) -> None:
    settings = settings_from_mapping(config)
    nodes = [MeasuredNode(n.ip, n.port, n.user, settings.ssh) for n in settings.command_nodes]
    given: list[CommandRunner] = list(nodes)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with Runner(settings, command_nodes=given) as runner:
        await first_tick_done(runner)
        # The keyhole watcher sweeps every 0.2 s and each sweep reads every active record: a sweep overlapping
        # a measured tick would be counted as the tick's CPU. Its loop is stopped; "sweep" measures one alone.
        for task in asyncio.all_tasks():
            if task.get_name() == "keyhole-watcher":
                task.cancel()
        print(json.dumps({"ready": True, "rss_mb": rss_mb()}), flush=True)
        while line := await reader.readline():
            request = json.loads(line)
            if request["op"] == "quit":
                break
            if request["op"] == "rss":
                print(json.dumps({"rss_mb": rss_mb()}), flush=True)
                continue
            if request["op"] == "sweep":
                cpu, wall = time.process_time(), time.perf_counter()
                await runner.keyhole.watcher.tick()
                swept = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
                print(json.dumps(swept), flush=True)
                continue
            calls = runner.nodes.calls
            squeue = sum(n.stdout_bytes.get("squeue", 0) for n in nodes)
            reads = runner.job_watcher.view.full_reads
            cpu, wall = time.process_time(), time.perf_counter()
            stats = await runner.job_watcher.tick()
            answer = {
                "cpu_s": time.process_time() - cpu,
                "wall_s": time.perf_counter() - wall,
                "calls": runner.nodes.calls - calls,
                "squeue_bytes": sum(n.stdout_bytes.get("squeue", 0) for n in nodes) - squeue,
                "stats": asdict(stats),
                "etcd_full_reads": runner.job_watcher.view.full_reads - reads,
            }
            print(json.dumps(answer), flush=True)


class RunnerProcess:
    """The parent's handle: ``async with RunnerProcess(config) as proc: await proc.ask({"op": "tick"})``."""

    def __init__(self, config: dict[str, Any], answer_timeout: float = 300.0) -> None:
        self._config = config
        self._timeout = answer_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __aexit__
        self.started: dict[str, Any] = {}

    async def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async with asyncio.timeout(self._timeout):
            line = await self._proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-600:].decode(errors="replace")
            raise RuntimeError(f"the runner process ended early: {tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._read()

    async def __aenter__(self) -> RunnerProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.runner_process",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(self._config).encode() + b"\n")
        self.started = await self._read()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            self._stderr.close()
            return
        if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(b'{"op": "quit"}\n')
            proc.stdin.close()
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        finally:
            self._stderr.close()


def main() -> None:
    config = json.loads(sys.stdin.buffer.readline())
    asyncio.run(child(config))


if __name__ == "__main__":
    main()
