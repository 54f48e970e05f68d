"""The configuration on the command line, as real processes: ``config check``, ``config schema``,
``config reference``, and ``serve`` refusing a bad or missing configuration with one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from runner.configdoc import EXAMPLE_FILE, REFERENCE_FILE
from tests.unit.config_support import BWVISU_CONFIG

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` with no RUNNER_* variable from outside (plus ``env``); an empty install dir."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUNNER_")}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True, timeout=50, check=False,
        env={**base, **(env or {})}, cwd=cwd,
    )  # fmt: skip


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *starts: str) -> None:
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(starts), lines
    for line, start in zip(lines, starts, strict=True):
        assert line.startswith(f"error: {start}"), lines


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    key = tmp_path / "id_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    (known_hosts := tmp_path / "known_hosts").write_text("")
    return {
        **BWVISU_CONFIG,
        "ssh": {"client-keys": [str(key)], "known-hosts": str(known_hosts)},
        "api": {"password": "s3cret-enough", "host": "127.0.0.1"},
    }


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_check_summarises_a_good_file(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write(tmp_path, good)
    proc = run("config", "check", str(path), env={"RUNNER_API__USER": "frontend", "RUNNER_TEMP": "/tmp"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"{path}: ok"
    assert "  command nodes: 2 (runner@10.0.0.2:22, runner@10.0.0.3:22)" in proc.stdout
    assert "user frontend" in proc.stdout
    assert "  environment:   RUNNER_API__USER" in proc.stdout
    assert "s3cret" not in proc.stdout + proc.stderr
    assert proc.stderr == "warning: RUNNER_TEMP: not a runner setting, ignored\n"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"gateway-node": []}, "gateway-node: unknown key (did you mean gateway-nodes?)"),
        ({"api": {"port": "4242", "password": "p"}}, "api.port: Input should be a valid integer, not a string"),
        ({"command-nodes": []}, "command-nodes: none configured"),
    ],
)
def test_check_and_serve_refuse_with_one_line(
    tmp_path: Path, good: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    path = write(tmp_path, {**good, **change})
    assert_one_error_line(run("config", "check", str(path)), problem)
    assert_one_error_line(run("serve", "--config", str(path)), problem)


def test_serve_preflight_names_each_problem(tmp_path: Path, good: dict[str, Any]) -> None:
    config = {**good, "ssh": {"client-keys": [str(tmp_path / "gone")]}, "api": {}}
    proc = run("serve", "--config", str(write(tmp_path, config)))
    assert_one_error_line(
        proc, "ssh.client-keys.0: cannot read private key", "ssh.known-hosts: not set", "api.password"
    )


def test_serve_without_any_config_file(tmp_path: Path) -> None:
    install = tmp_path / "opt" / "runner" / "bin"
    proc = run("serve", env={"RUNNER_INSTALL_DIR": str(install)}, cwd=tmp_path)
    assert_one_error_line(
        proc,
        f"no config file found; searched: {install}/config.json, {install.parent}/etc/config.json, "
        "/etc/runner/config.json, /opt/runner/etc/config.json",
    )


def test_check_of_a_missing_or_broken_file(tmp_path: Path) -> None:
    assert_one_error_line(run("config", "check", str(tmp_path / "absent.json")), "config file")
    (broken := tmp_path / "broken.json").write_text("{not json")
    assert_one_error_line(run("config", "check", str(broken)), f"cannot read config file {broken}")


def test_unrelated_environment_does_not_stop_check(tmp_path: Path, good: dict[str, Any]) -> None:
    foreign = {"RUNNER_OS": "Linux", "RUNNER_DEBUG": "1", "RUNNER_TOOL_CACHE": "/opt/cache", "RUNNER_NAME": "ci 2"}
    proc = run("config", "check", str(write(tmp_path, good)), env=foreign)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.splitlines()) == 4
    assert all(line.startswith("warning: RUNNER_") for line in proc.stderr.splitlines())


def test_schema_is_json_on_stdout() -> None:
    proc = run("config", "schema")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert "keyholed-port-range" in schema["properties"]


def test_reference_writes_the_committed_docs(tmp_path: Path) -> None:
    proc = run("config", "reference", "--write", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for name in (REFERENCE_FILE, EXAMPLE_FILE):
        assert (tmp_path / name).read_text() == (DOCS / name).read_text()
    assert run("config", "reference").stdout == (DOCS / REFERENCE_FILE).read_text()


def test_the_example_passes_check_apart_from_the_files_it_names(tmp_path: Path) -> None:
    example = json.loads((DOCS / EXAMPLE_FILE).read_text())
    named: list[str] = []

    def site_files(value: Any) -> Any:
        """The example with each /etc/runner file replaced by a real one (the SSH key a real private key)."""
        if isinstance(value, dict):
            return {k: site_files(v) for k, v in value.items()}
        if isinstance(value, list):
            return [site_files(v) for v in value]
        if isinstance(value, str) and value.startswith("/etc/runner/"):
            named.append(value)
            path = tmp_path / value.removeprefix("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.name.startswith("id_"):
                asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
            else:
                path.write_text("placeholder\n")
            return str(path)
        return value

    as_is = run("config", "check", str(DOCS / EXAMPLE_FILE))
    assert as_is.returncode == 2
    assert all("/etc/runner/" in line for line in as_is.stderr.splitlines()), as_is.stderr
    proc = run("config", "check", str(write(tmp_path, site_files(example))))
    assert proc.returncode == 0, proc.stderr
    assert len(named) >= 7  # both TLS pairs, the SSH key and known_hosts, etcd's CA
