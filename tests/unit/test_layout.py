"""The production package's boundaries: only the dev wiring (``runner/dev.py``) imports the simulator (what the
production path loads is checked in a fresh interpreter: tests/integration/test_layout_imports.py)."""

from __future__ import annotations

import ast
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
