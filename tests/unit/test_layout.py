"""The production package's boundaries: only the dev wiring (``runner/dev.py``) imports the simulator, and the
production path (``serve``, the app, the API) loads neither it nor the simulator; every runner error class lives in
``runner/errors.py`` (the in-job client, which imports nothing of the runner, has its own)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import runner

pytestmark = pytest.mark.unit

RUNNER = Path(runner.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_dev_wiring_imports_the_simulator() -> None:
    importers = sorted(
        str(path.relative_to(RUNNER.parent))
        for path in RUNNER.rglob("*.py")
        if any(name == "simulator" or name.startswith("simulator.") for name in _imported_modules(path))
    )
    assert importers == ["runner/dev.py"]


def test_the_production_path_loads_neither_the_dev_wiring_nor_the_simulator() -> None:
    probe = (
        "import sys, runner.__main__, runner.app, runner.api.app, runner.check, runner.admin\n"
        "print(sorted(m for m in sys.modules if m == 'runner.dev' or m.split('.')[0] == 'simulator'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# The in-job client runs in the job with the standard library only (see runner/keyhole/client.py).
OWN_ERRORS = {"runner.keyhole.client.KeyholeFailure"}


def _runner_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(RUNNER.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in RUNNER.rglob("*.py")
        if path.name != "__main__.py"
    )


def _error_classes(name: str) -> set[str]:
    """The exception classes module ``name`` defines."""
    module = importlib.import_module(name)
    return {
        f"{name}.{value.__qualname__}"
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name
    }


def test_every_error_class_of_the_runner_is_in_the_error_tree() -> None:
    elsewhere = set().union(*(_error_classes(name) for name in _runner_modules() if name != "runner.errors"))
    assert elsewhere == OWN_ERRORS


def test_the_scan_sees_error_classes() -> None:
    """The scan above finds the classes a module defines (so it would find one defined outside the tree)."""
    found = _error_classes("runner.errors")
    assert {"runner.errors.NodeUnreachable", "runner.errors.SlurmParseError", "runner.errors.AdminError"} <= found
    assert "runner.errors.RunnerError" in found
