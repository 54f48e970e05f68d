"""Command line: ``python -m runner dev`` (embedded default) and ``python -m runner serve`` (a real cluster)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys
from pathlib import Path

from runner.admin import add_jobs_commands, run_jobs_command
from runner.api.server import ApiServer
from runner.app import Runner
from runner.check import add_check_command, run_check_command
from runner.config import Settings, load_settings
from runner.configcli import add_config_commands, error_lines, run_config_command
from runner.errors import ConfigError
from runner.preflight import require_preflight

log = logging.getLogger("runner")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runner", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run on an embedded simulated cluster with a local etcd")
    dev.add_argument("--port", type=int, default=4242, help="API port (default 4242; 0 picks a free one)")
    serve = sub.add_parser("serve", help="run against the cluster in the configuration file")
    serve.add_argument("--config", type=Path, default=None, help="config.json (default: bwVisu's search order)")
    add_config_commands(sub)
    add_check_command(sub)
    add_jobs_commands(sub)
    return parser


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


async def _serve(settings: Settings, extra: list[str], *, show_password: bool = False) -> None:
    async with Runner(settings) as runner, ApiServer(runner.app, settings.api) as server:
        print(_banner(settings, server.url, extra, show_password=show_password), flush=True)
        await server.wait()


async def _dev(port: int) -> None:
    from runner.devcluster import dev_environment  # noqa: PLC0415 - the simulator is only needed here

    async with dev_environment(api_port=port) as env:
        extra = [
            f"simulated cluster: {len(env.cluster.compute_nodes)} compute nodes, "
            f"{len(env.cluster.gateway_nodes)} gateways; users: alice, bob",
            f"etcd:         {env.etcd.endpoint}",
        ]
        await _serve(env.settings, extra, show_password=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "config":
            return run_config_command(args)
        if args.command == "check":
            return run_check_command(args)
        if args.command == "jobs":
            return run_jobs_command(args)
        if args.command == "dev":
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_dev(args.port))
        else:
            settings = load_settings(args.config)
            require_preflight(settings)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve(settings, []))
    except ConfigError as exc:
        for line in error_lines(exc):
            print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
