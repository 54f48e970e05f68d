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
