"""The runner image's inputs without Docker: its runtime dependencies (what ``runner serve`` imports, and only that),
the wheels' pins and the input hash over them, and its multi-stage Dockerfile's parent line."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from containers import images, wheelhouse

pytestmark = pytest.mark.unit

# Needed by a runtime dependency that does not declare them (aetcd): imported by it, not by the runner.
UNDECLARED_BY_AETCD = {"grpcio", "protobuf"}


def _imported_top_level_modules(package: Path) -> set[str]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"runner", "simulator"}


def _distributions_of(modules: set[str]) -> set[str]:
    provided = importlib.metadata.packages_distributions()
    return {canonicalize_name(dist) for module in modules for dist in provided[module]}


def test_every_module_the_runner_imports_comes_with_its_runtime_dependencies() -> None:
    imported = _distributions_of(_imported_top_level_modules(images.REPO_ROOT / "runner"))
    pinned = {pin.split("==")[0] for pin in wheelhouse.runtime_pins()}
    assert imported <= pinned, f"imported by runner/ but not installed with it: {imported - pinned}"


def test_every_declared_runtime_dependency_is_used_by_the_runner() -> None:
    # `runner dev`'s simulator is imported lazily and needs only what the runner needs (plus the testbed extra)
    imported = _distributions_of(_imported_top_level_modules(images.REPO_ROOT / "runner"))
    declared = {canonicalize_name(req.name) for req in wheelhouse.runtime_requirements()}
    assert declared - UNDECLARED_BY_AETCD <= imported, f"declared but never imported: {declared - imported}"
    aetcd = _imported_top_level_modules(_site_package("aetcd"))
    assert {"grpc", "google"} <= aetcd  # grpcio and protobuf: still needed by aetcd


def _site_package(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent


def test_the_pins_are_the_installed_runtime_closure_without_dev_tools() -> None:
    pins = dict(pin.split("==") for pin in wheelhouse.runtime_pins())
    assert {"fastapi", "starlette", "pydantic-core", "asyncssh", "cryptography", "aetcd"} <= set(pins)
    # httpx is a runtime dependency since `runner jobs` (the admin CLI) talks to the API with it
    assert not {"pytest", "testcontainers", "mypy", "psutil", "tenacity", "playwright"} & set(pins)
    assert all(importlib.metadata.version(name) == version for name, version in pins.items())


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(images.REPO_ROOT / "runner", root / "runner", ignore=shutil.ignore_patterns("__pycache__"))
    for name in wheelhouse.PROJECT_FILES:
        shutil.copy2(images.REPO_ROOT / name, root / name)
    return root


def test_the_wheels_fingerprint_follows_the_runners_sources_and_dependencies(tmp_path: Path) -> None:
    root = _project_copy(tmp_path)
    first = wheelhouse.fingerprint(root)
    assert wheelhouse.fingerprint(root) == first
    (root / "runner" / "templates" / "template_webapp.txt").write_text("changed\n")
    second = wheelhouse.fingerprint(root)
    assert second != first
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"chevron>=0.14,<0.15",\n', ""))
    assert "chevron==" not in " ".join(wheelhouse.runtime_pins(root))
    third = wheelhouse.fingerprint(root)
    assert third != second
    (root / "simulator").mkdir()  # another package of the distribution: not in the image, not in its hash
    (root / "simulator" / "x.py").write_text("x = 1\n")
    assert wheelhouse.fingerprint(root) == third


def test_a_runtime_dependency_missing_here_is_named(tmp_path: Path) -> None:
    root = _project_copy(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text().replace('"chevron>=0.14,<0.15",', '"no-such-distribution-xyz>=1",')
    pyproject.write_text(text)
    with pytest.raises(wheelhouse.WheelhouseError, match=r"no-such-distribution-xyz .*not installed"):
        wheelhouse.runtime_pins(root)


def test_the_runner_images_hash_covers_its_wheels_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.input_hash("runner")
    monkeypatch.setattr(wheelhouse, "fingerprint", lambda: "something else")
    assert images.input_hash("runner") != before
    assert images.input_hash("gateway") == images.input_hashes()["gateway"]  # the others do not depend on it


def test_a_multi_stage_dockerfile_keeps_its_stage_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = next(spec for spec in images.IMAGES if spec.role == "runner")
    monkeypatch.setattr(wheelhouse, "fill", lambda dest: dest.mkdir())
    dockerfile = (images.build_context(spec, tmp_path / "ctx", "bwvisu-testbed/base:abc") / "Dockerfile").read_text()
    assert "\nFROM bwvisu-testbed/base:abc AS runtime-base\n" in dockerfile
    assert "FROM runtime-base AS build\n" in dockerfile
    assert "\nUSER 10001:10001\n" in dockerfile
