"""The runner image's wheels, made on the host: the project's own wheel and those of its runtime dependencies.

Containers reach Debian's mirror during ``docker build`` but not necessarily a Python package index, so the
runner image installs only wheels handed to it in the build context (``pip install --no-index``). They are made
here with the host's pip, which reaches the index (or its cache):

- ``deps/``: every distribution ``runner serve`` needs (``[project] dependencies`` of ``pyproject.toml`` and theirs,
  markers evaluated for the image), pinned to the versions installed in the environment running this code, so the
  image runs exactly what the tests run; downloaded as binary wheels for the image's interpreter
  (:data:`TARGET_PYTHON`, Debian bookworm's ``python3``) and platform, whatever Python the host has.
- ``project/``: the ``runner`` package alone, built from a copy of its sources with ``pyproject.toml`` (the
  distribution's other packages, the simulator and the testbed, are not needed in the image).

:func:`fingerprint` is what the image's input hash covers (cheap: no pip, no Docker).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "runner"
PROJECT_FILES = ("pyproject.toml", "README.md")  # the metadata the wheel is built from
TARGET_PYTHON = "3.11"
"""The interpreter of the image: Debian bookworm's ``python3``."""
# manylinux wheels for glibc up to bookworm's 2.36 (pip does not widen a given --platform itself)
_GLIBC_MINORS = range(17, 37)


class WheelhouseError(RuntimeError):
    """The wheels could not be made; the message says which distribution or step failed."""


def _target_environment() -> dict[str, str]:
    """Marker values for the image's interpreter (``extra`` empty: extras are not installed)."""
    env = {key: str(value) for key, value in default_environment().items()}
    env.update(python_version=TARGET_PYTHON, python_full_version=f"{TARGET_PYTHON}.0", extra="")
    env.update(platform_machine=platform.machine(), sys_platform="linux", platform_system="Linux")
    return env


def runtime_requirements(repo_root: Path = REPO_ROOT) -> list[Requirement]:
    """``[project] dependencies`` of ``pyproject.toml``: what the runner's install pulls."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project.get("dependencies", [])]


def runtime_pins(repo_root: Path = REPO_ROOT) -> list[str]:
    """``name==version`` for the runtime requirements and everything they require, as installed here."""
    env = _target_environment()
    pins: dict[str, str] = {}
    todo = runtime_requirements(repo_root)
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in pins:
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise WheelhouseError(
                f"{req.name} (a runtime dependency) is not installed here: install the project (scripts/bootstrap)"
            ) from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise WheelhouseError(f"{req.name} {dist.version} is installed but {req} is required: reinstall")
        pins[name] = dist.version
        todo += [Requirement(spec) for spec in dist.requires or []]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _sources(repo_root: Path) -> list[Path]:
    package = sorted(p for p in (repo_root / PACKAGE).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [*(repo_root / name for name in PROJECT_FILES), *package]


def fingerprint(repo_root: Path = REPO_ROOT) -> str:
    """A hash over the pins, the target interpreter and platform, and the files the project's wheel is built from."""
    digest = hashlib.sha256(f"{TARGET_PYTHON}/{platform.machine()}\0".encode())
    digest.update("\n".join(runtime_pins(repo_root)).encode() + b"\0")
    for path in _sources(repo_root):
        digest.update(str(path.relative_to(repo_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _pip(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING")]
        raise WheelhouseError(f"pip {args[0]} failed:\n" + "\n".join(errors[-20:]))


def fill(dest: Path, repo_root: Path = REPO_ROOT) -> None:
    """Write the dependencies' wheels into ``dest/deps`` and the project's wheel into ``dest/project``."""
    machine = platform.machine()
    platforms = [arg for minor in _GLIBC_MINORS for arg in ("--platform", f"manylinux_2_{minor}_{machine}")]
    abi = f"cp{TARGET_PYTHON.replace('.', '')}"
    _pip(
        "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--python-version", TARGET_PYTHON,
        "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none", *platforms,
        "--dest", str(dest / "deps"), *runtime_pins(repo_root),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bwvisu-runner-src-") as tmp:
        source = Path(tmp)
        for name in PROJECT_FILES:
            shutil.copy2(repo_root / name, source / name)
        shutil.copytree(repo_root / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest / "project"), str(source))
    built = list((dest / "project").glob("*.whl"))
    if len(built) != 1:
        raise WheelhouseError(f"expected one project wheel, found {[p.name for p in built]}")
