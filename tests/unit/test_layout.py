"""The production package's boundaries: only the dev wiring (``runner/dev.py``) imports the simulator (what the
production path loads is checked in a fresh interpreter: tests/integration/test_layout_imports.py); every runner
error class lives in ``runner/errors.py`` (the in-job client, which imports nothing of the runner, has its own)."""

from __future__ import annotations

import ast
import importlib
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


TESTS = Path(__file__).parents[1]


def test_no_test_module_imports_from_another_test_module() -> None:
    """Shared helpers live in support modules (``*_support.py``, ``conftest.py``, ``polling.py``, ``scripted.py``...),
    so a test module can be moved, split or deleted without breaking another."""
    offenders = sorted(
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in TESTS.rglob("*.py")
        for name in _imported_modules(path)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    )
    assert offenders == []


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
