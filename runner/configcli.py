"""``python -m runner config check|schema|reference``: the settings checked, described and documented.

``check PATH`` validates a file as ``serve`` would load it (the environment's ``RUNNER_*`` variables on top)
and runs the preflight: a short summary and exit 0, or one line per problem and exit 2. ``schema`` prints the
file's JSON Schema; ``reference`` the reference page (``--write DIR`` writes it and the example config).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner.config import Settings, find_config_file, read_config_file, settings_from_mapping
from runner.configdoc import config_schema, reference_page, write_docs
from runner.configenv import environment_report
from runner.errors import ConfigError, InvalidSettings
from runner.preflight import require_preflight

EXIT_INVALID = 2


def _say(*lines: str, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write("".join(f"{line}\n" for line in lines))


def add_operator_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *, help: str, description: str | None
) -> argparse.ArgumentParser:
    """A subcommand that reads the config file (``--config``), its module docstring as its ``--help`` text."""
    parser = subparsers.add_parser(
        name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=None, help="config.json (default: bwVisu's search order)")
    return parser


def add_config_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config`` and its subcommands to the runner's command line."""
    config = subparsers.add_parser("config", help="check a config file; print its JSON Schema or reference page")
    sub = config.add_subparsers(dest="config_command", required=True)
    check = sub.add_parser("check", help="validate and preflight a config file (exit 2 on any problem)")
    check.add_argument("path", type=Path, help="the config.json to check")
    sub.add_parser("schema", help="print the JSON Schema of the config file")
    reference = sub.add_parser("reference", help="print the reference page of every setting")
    reference.add_argument(
        "--write", type=Path, metavar="DIR", help="write configuration.md and config.example.json into DIR"
    )


def error_lines(exc: ConfigError) -> list[str]:
    """What to print for ``exc``: one line per problem."""
    if isinstance(exc, InvalidSettings):
        return exc.problems
    return exc.public.splitlines() or [exc.public]


def _summary(path: Path, settings: Settings, environment: list[str]) -> list[str]:
    def nodes(addresses: list[str]) -> str:
        return f"{len(addresses)} ({', '.join(addresses)})"

    api, keyhole, etcd, gateways = settings.api, settings.keyholed_servers[0], settings.etcd, settings.gateway_nodes
    etcd_auth = [word for word, on in (("TLS", etcd.use_tls), (f"user {etcd.user}", bool(etcd.user))) if on]
    lines = [
        f"{path}: ok",
        f"  command nodes: {nodes([f'{n.user}@{n.ip}:{n.port}' for n in settings.command_nodes])}",
        f"  gateways:      {nodes([f'{g.user}@{g.internal_ip}:{g.port} ({g.external_ip})' for g in gateways])}",
        f"  keyhole:       {'https' if settings.keyhole.tls else 'http'}://{keyhole.ip}:{keyhole.port}, ports "
        f"{settings.keyholed_port_range.min}-{settings.keyholed_port_range.max}, "
        f"at most {settings.keyholed_max_forwarders_per_job} per job",
        f"  etcd:          {nodes([f'{e.ip}:{e.port}' for e in settings.etcd_servers])}"
        + (f", {', '.join(etcd_auth)}" if etcd_auth else ""),
        f"  API:           {'https' if api.tls_cert else 'http'}://{api.host}:{api.port}, user {api.user}",
    ]
    if environment:
        lines.append(f"  environment:   {', '.join(environment)}")
    return lines


def _check(path: Path) -> int:
    report = environment_report(Settings)
    for warning in report.warnings:
        _say(f"warning: {warning}", err=True)
    try:
        found = find_config_file(path)
        assert found is not None  # an explicit path is returned or refused
        settings = settings_from_mapping(read_config_file(found))
        require_preflight(settings)
    except ConfigError as exc:
        _say(*(f"error: {line}" for line in error_lines(exc)), err=True)
        return EXIT_INVALID
    _say(*_summary(found, settings, report.used))
    return 0


def run_config_command(args: argparse.Namespace) -> int:
    """Run the ``config`` subcommand ``args`` asks for; the exit status."""
    if args.config_command == "check":
        return _check(args.path)
    if args.config_command == "schema":
        _say(json.dumps(config_schema(), indent=2))
        return 0
    if args.write is not None:
        for written in write_docs(args.write):
            _say(f"wrote {written}")
    else:
        sys.stdout.write(reference_page())
    return 0
