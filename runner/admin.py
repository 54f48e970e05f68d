"""``python -m runner jobs list|show ID|cancel ID``: the runner's jobs for an admin, through its REST API.

The command speaks to the API as the web frontend does (HTTP basic auth, the same user and password), so it
works against a runner on another host and changes nothing the API would refuse. The URL and user come from
``--url``/``--user`` or the config's ``api`` section; the password from ``--password-file``, else the
environment's ``RUNNER_API__PASSWORD``, else the config: never from the command line, where other local users
could read it. Session passwords and URLs are masked unless ``--show-secrets`` is given.

Exit status: 0 done, 1 the API refused (unknown job, job already finished, ...), 2 bad configuration or usage,
3 the credentials were refused (401), 4 the API could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from runner.config import ApiSettings, load_settings
from runner.configcli import add_operator_command, error_lines
from runner.errors import AdminError, ConfigError

EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
PASSWORD_ENV = "RUNNER_API__PASSWORD"  # noqa: S105 - the variable's name, not a password
MASK = "********"


@dataclass(frozen=True)
class Target:
    url: str
    user: str
    password: str
    verify: str | bool


def add_jobs_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``jobs`` and its subcommands to the runner's command line."""
    jobs = add_operator_command(
        subparsers, "jobs", help="list, show or cancel jobs through the REST API", description=__doc__
    )
    jobs.add_argument("--url", default=None, help="the API's base URL (default: from the config's api section)")
    jobs.add_argument("--user", default=None, help="API user (default: the config's api.user)")
    jobs.add_argument("--password-file", type=Path, default=None, help="file holding the API password")
    jobs.add_argument("--ca-file", type=Path, default=None, help="CA bundle to verify the API's TLS certificate")
    jobs.add_argument("--timeout", type=float, default=30.0, help="per request, seconds (default 30)")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)
    sub.add_parser("list", help="the jobs that have not finished: id, state, user, template")
    show = sub.add_parser("show", help="one job's state, Slurm details and services")
    show.add_argument("job_id")
    show.add_argument("--show-secrets", action="store_true", help="print the session password and URL")
    cancel = sub.add_parser("cancel", help="cancel a job that has not finished")
    cancel.add_argument("job_id")


def _target(args: argparse.Namespace) -> Target:
    password: str | None = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text().strip()
        except OSError as exc:
            raise AdminError(f"cannot read --password-file {args.password_file}: {exc.strerror}", EXIT_CONFIG) from exc
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    url, user, verify = args.url, args.user, str(args.ca_file) if args.ca_file else True
    # with --url and a password, no config file is needed (the user defaults to the API's default user)
    if url is None or password is None or (user is None and args.config is not None):
        settings = load_settings(args.config)
        api = settings.api
        if url is None:
            scheme = "https" if api.tls_cert else "http"
            host = "127.0.0.1" if api.host in {"0.0.0.0", "::", ""} else api.host  # noqa: S104 - listening on all
            url = f"{scheme}://{host}:{api.port}"
            if api.tls_cert and args.ca_file is None:
                verify = str(api.tls_cert)
        user = user or api.user
        password = password if password is not None else api.password.get_secret_value()
    user = user or ApiSettings().user
    if not password:
        raise AdminError(f"no API password: give --password-file, set {PASSWORD_ENV} or api.password", EXIT_CONFIG)
    return Target(url.rstrip("/"), user, password, verify)


def _request(client: httpx.Client, method: str, path: str) -> Any:
    try:
        response = client.request(method, path)
    except httpx.TransportError as exc:
        raise AdminError(f"cannot reach the API at {client.base_url}: {exc}", EXIT_UNREACHABLE) from exc
    if response.status_code == httpx.codes.UNAUTHORIZED:
        raise AdminError(f"the API at {client.base_url} refused the credentials (401)", EXIT_AUTH)
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {"response": response.text[:200]}
    if response.is_error:
        said = body.get("response", "") if isinstance(body, dict) else ""
        code = body.get("error", "") if isinstance(body, dict) else ""
        raise AdminError(f"{method} {path}: {response.status_code} {code}: {said}".replace(" : ", ": "), EXIT_REFUSED)
    return body


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip() for row in rows
    )


def _list(client: httpx.Client) -> str:
    ids = _request(client, "GET", "/jobs")["jobs"]
    rows: list[tuple[str, ...]] = [("JOB", "STATE", "USER", "TEMPLATE")]
    for job_id in ids:
        try:
            job = _request(client, "GET", f"/jobs/{job_id}")
        except AdminError as exc:
            if exc.status != EXIT_REFUSED:
                raise
            continue  # finished between the two requests
        rows.append((job_id, job["state"], job["uid"], job["batch-script"]["template-name"]))
    return _table(rows) if len(rows) > 1 else "no jobs that have not finished"


def _show(client: httpx.Client, job_id: str, *, secrets: bool) -> str:
    job = _request(client, "GET", f"/jobs/{job_id}")
    lines = [
        f"job:       {job['job-id']}",
        f"state:     {job['state']}",
        f"user:      {job['uid']}",
        f"template:  {job['batch-script']['template-name']}",
        "variables: " + ", ".join(f"{k}={v}" for k, v in sorted(job["batch-script"]["variables"].items())),
    ]
    lines += [f"  {key}: {value}" for key, value in sorted(job["details"].items())]
    for service in job["services"]:
        password = service.get("password")
        url = service.get("url")
        shown = [
            f"service:   {service['external-ip']}:{service['external-port']} -> port {service['internal-port']}",
        ]
        if password:
            shown.append(f"  password: {password if secrets else MASK}")
        if url:
            shown.append(f"  url:      {url if secrets else '(hidden; --show-secrets)'}")
        lines += shown
    return "\n".join(lines)


def run_jobs_command(args: argparse.Namespace) -> int:
    """``jobs``: run the subcommand, print its answer, return the exit status."""
    target = Target("", "", "", verify=True)
    try:
        target = _target(args)
        with httpx.Client(
            base_url=target.url,
            auth=(target.user, target.password),
            verify=target.verify,
            timeout=args.timeout,
            trust_env=False,
        ) as client:
            if args.jobs_command == "list":
                text = _list(client)
            elif args.jobs_command == "show":
                text = _show(client, args.job_id, secrets=args.show_secrets)
            else:
                text = str(_request(client, "DELETE", f"/jobs/{args.job_id}").get("response", "job cancelled"))
                text = f"{args.job_id}: {text}"
    except ConfigError as exc:
        sys.stderr.write("".join(f"error: {line}\n" for line in error_lines(exc)))
        return EXIT_CONFIG
    except AdminError as exc:
        user = f" of user {target.user}" if exc.status == EXIT_AUTH else ""
        sys.stderr.write(f"error: {exc}{user}\n")
        return exc.status
    sys.stdout.write(f"{text}\n")
    return 0
