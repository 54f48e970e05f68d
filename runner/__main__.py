"""Command line: ``python -m runner dev`` (embedded default) and ``python -m runner serve`` (a real cluster).

Both run until SIGTERM or SIGINT (Ctrl-C), then shut down in order: the API stops accepting and lets open
requests finish (a bound), the loops stop, the leader lease is revoked, SSH and etcd close (``dev`` then stops
its simulated cluster and etcd and removes their folders); exit status 0. A second signal closes open
connections at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from runner import __version__, logs
from runner.admin import add_jobs_commands, run_jobs_command
from runner.app import Runner
from runner.check import add_check_command, run_check_command
from runner.config import Settings, load_settings
from runner.configcli import add_config_commands, error_lines, run_config_command
from runner.errors import ConfigError
from runner.preflight import require_preflight
from runner.web.server import ApiServer

log = logging.getLogger("runner")


def _log_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The logging options; on subcommands without defaults, so ``runner dev --log-level DEBUG`` works too."""

    def default(value: str) -> str:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--log-level", default=default("INFO"), choices=logs.LEVELS, help="the runner's own lines")
    parser.add_argument(
        "--library-log-level",
        default=default("WARNING"),
        choices=logs.LEVELS,
        help="libraries' lines (asyncssh, uvicorn, grpc; dev's simulated cluster)",
    )
    parser.add_argument("--log-format", default=default("text"), choices=logs.FORMATS, help="json: one object per line")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bwvisu-runner {__version__}")
    _log_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run on an embedded simulated cluster with a local etcd")
    dev.add_argument("--port", type=int, default=4242, help="API port (default 4242; 0 picks a free one)")
    serve = sub.add_parser("serve", help="run against the cluster in the configuration file")
    serve.add_argument("--config", type=Path, default=None, help="config.json (default: bwVisu's search order)")
    add_config_commands(sub)
    add_check_command(sub)
    add_jobs_commands(sub)
    for command in sub.choices.values():
        _log_options(command, defaults=False)
    return parser


class Shutdown:
    """Turns SIGTERM and SIGINT into an orderly stop: the first sets :meth:`wait`'s event, a second one calls
    the ``force`` callbacks (close open connections now)."""

    def __init__(self) -> None:
        self._requested = asyncio.Event()
        self.signal: str | None = None
        self._force: list[Callable[[], None]] = []

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig.name
            log.info("shutting down (%s): finishing open requests", sig.name)
            self._requested.set()
            return
        log.warning("%s again: closing open connections now", sig.name)
        for force in self._force:
            force()

    def on_force(self, force: Callable[[], None]) -> None:
        self._force.append(force)

    async def wait(self) -> None:
        await self._requested.wait()


async def _until_either(first: Awaitable[None], second: Awaitable[None]) -> None:
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _banner(settings: Settings, url: str, extra: list[str], *, show_password: bool) -> str:
    """What the runner prints at start; the API password only for ``dev``'s generated one, never for ``serve``."""
    user = settings.api.user
    password = settings.api.password.get_secret_value()
    # without the password, curl asks for it
    curl_auth = shlex.quote(f"{user}:{password}" if show_password else user)
    shown = password if show_password else "(password as configured)"
    lines = [
        f"runner API:   {url}   (docs: {url}/docs)",
        f"credentials:  {user} / {shown}",
        *extra,
        "try:",
        f"  curl -u {curl_auth} {url}/templates",
        f"  curl -u {curl_auth} -H 'Content-Type: application/json' -d "
        + shlex.quote(
            '{"uid": "alice", "template-name": "template_webapp.txt", "variables": '
            '{"expected_runtime_in_minutes": "15", "number_of_nodes": "1", "tasks_per_node": "1"}}'
        )
        + f" {url}/jobs",
        f"  curl -u {curl_auth} {url}/jobs/JOB_ID   # once available: open services[0].url (it holds the password)",
    ]
    return "\n".join(lines)


async def _serve(settings: Settings, shutdown: Shutdown, extra: list[str], *, show_password: bool = False) -> None:
    async with Runner(settings) as runner, ApiServer(runner.app, settings.api) as server:
        shutdown.on_force(server.force_stop)
        print(_banner(settings, server.url, extra, show_password=show_password), flush=True)
        await _until_either(server.wait(), shutdown.wait())


async def _dev(port: int, shutdown: Shutdown) -> None:
    from runner.dev import dev_environment  # noqa: PLC0415 - the simulator is only needed here

    async with dev_environment(api_port=port) as env:
        extra = [
            f"simulated cluster: {len(env.cluster.compute_nodes)} compute nodes, "
            f"{len(env.cluster.gateway_nodes)} gateways; users: alice, bob",
            f"etcd:         {env.etcd.endpoint}",
        ]
        await _serve(env.settings, shutdown, extra, show_password=True)


def _run(body: Callable[[Shutdown], Awaitable[None]]) -> None:
    """Run ``body`` until it ends or a signal stops it in order."""

    async def main() -> None:
        shutdown = Shutdown()
        shutdown.install()
        await body(shutdown)
        log.info("runner stopped%s", f" ({shutdown.signal})" if shutdown.signal else "")

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(args.log_level, args.library_log_level, args.log_format)
    try:
        if args.command == "config":
            return run_config_command(args)
        if args.command == "check":
            return run_check_command(args)
        if args.command == "jobs":
            return run_jobs_command(args)
        if args.command == "dev":
            _run(lambda shutdown: _dev(args.port, shutdown))
        else:
            settings = load_settings(args.config)
            require_preflight(settings)
            _run(lambda shutdown: _serve(settings, shutdown, []))
    except ConfigError as exc:
        for line in error_lines(exc):
            print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
