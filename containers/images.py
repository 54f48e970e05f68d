"""Build the testbed's images locally, cached by a hash of their inputs.

No registry can be reached, so the base image is made here: ``debootstrap`` a minimal Debian bookworm
rootfs from the mirror the host's apt is configured with (read at build time, never written into the
repository), copy the host's apt sources into it so ``docker build`` can install packages, and
``docker import`` it. Every other role is a normal Dockerfile in its own folder under ``containers/``.

An image's inputs are its folder's files, the repository files it takes in (``extra``: the command and gateway
images install ``bwvisu_site``'s sudoers files and helpers, which stay in one place and are copied into the build
context), and its parent's hash. Each role image is tagged with that hash (``bwvisu-testbed/ROLE:HASH``, built
``FROM`` its parent's hash tag) and labelled with it, so a build is skipped when the image exists, images rebuild
only when their inputs change, and checkouts at different revisions sharing one Docker engine never replace each
other's images.

The runner's image (``runner/``) installs wheels instead of Debian packages for the project: its build context
also gets ``wheels/``, made on the host (:mod:`containers.wheelhouse`), and its input hash also covers what those
wheels are made from (:func:`containers.wheelhouse.fingerprint`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from containers import wheelhouse

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
REPO = "bwvisu-testbed"
HASH_LABEL = "org.bwvisu.testbed.input-hash"
SUITE = "bookworm"
# Bump when the base recipe below changes: it is part of the base image's input hash.
BASE_RECIPE_VERSION = "1"

Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """An image could not be built; the message names the image and the failing step."""


@dataclass(frozen=True)
class ImageSpec:
    """One role's image: its folder under ``containers/``, the image it is built ``FROM`` and the repository
    folders copied into its build context (``(source relative to the repository, folder in the context)``)."""

    role: str
    parent: str | None
    extra: tuple[tuple[str, str], ...] = ()
    wheels: bool = False
    """The context gets ``wheels/`` (:func:`containers.wheelhouse.fill`)."""


BASE_TAG = f"{REPO}/base:{SUITE}"

# Build order: parents first.
IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("common", "base"),
    ImageSpec("controller", "common"),
    ImageSpec("compute", "common"),
    ImageSpec("command", "common", (("bwvisu_site/command", "site"),)),
    ImageSpec("gateway", "common", (("bwvisu_site/gateway", "site"),)),
    ImageSpec("etcd", "base"),
    ImageSpec("runner", "base", wheels=True),
)


def _docker(*args: str, check: bool = True, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], check=check, capture_output=True, input=input_bytes)


def image_hash(tag: str) -> str | None:
    """The input-hash label of a local image, or ``None`` when the image is absent."""
    proc = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{HASH_LABEL}"}}}}', tag, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip() or None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def folder_hash(folder: Path, parent_hash: str, extra: tuple[tuple[Path, str], ...] = (), more: str = "") -> str:
    """A stable hash over every file (path and content) below ``folder``, the ``extra`` folders (each under its
    name in the build context), the parent image's hash and ``more`` (a hash of further inputs)."""
    digest = hashlib.sha256(parent_hash.encode() + (f"\0{more}".encode() if more else b""))
    sources = [(folder, ""), *((source, f"{name}/") for source, name in extra)]
    for source, prefix in sources:
        for path in _files(source):
            digest.update((prefix + str(path.relative_to(source))).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _extra(spec: ImageSpec) -> tuple[tuple[Path, str], ...]:
    return tuple((REPO_ROOT / source, name) for source, name in spec.extra)


def spec_hash(spec: ImageSpec, parent_hash: str) -> str:
    """One role image's input hash."""
    more = wheelhouse.fingerprint() if spec.wheels else ""
    return folder_hash(HERE / spec.role, parent_hash, _extra(spec), more)


def input_hash(role: str) -> str:
    """One image's input hash (cheap: file contents only, no Docker)."""
    if role == "base":
        return base_hash()
    spec = next((spec for spec in IMAGES if spec.role == role), None)
    if spec is None or spec.parent is None:
        raise ImageBuildError(f"no image role {role!r}")
    return spec_hash(spec, input_hash(spec.parent))


def input_hashes() -> dict[str, str]:
    """Every image's input hash."""
    return {"base": base_hash(), **{spec.role: input_hash(spec.role) for spec in IMAGES}}


def build_context(spec: ImageSpec, dest: Path, parent_tag: str) -> Path:
    """Fill ``dest`` with the role's folder and its extra folders; its Dockerfile builds ``FROM parent_tag``."""
    shutil.copytree(HERE / spec.role, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for source, name in _extra(spec):
        shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if spec.wheels:
        try:
            wheelhouse.fill(dest / "wheels")
        except wheelhouse.WheelhouseError as exc:
            raise ImageBuildError(f"{spec.role}: {exc}") from None
    dockerfile = dest / "Dockerfile"
    # the first FROM names the parent (a multi-stage file may name that stage: FROM ... AS NAME)
    pattern = rf"^FROM {re.escape(REPO)}/\S+(?P<stage>\s+AS\s+\S+)?$"
    text, count = re.subn(pattern, rf"FROM {parent_tag}\g<stage>", dockerfile.read_text(), count=1, flags=re.MULTILINE)
    if count != 1:
        raise ImageBuildError(f"{spec.role}: the Dockerfile has no FROM {REPO}/... line")
    dockerfile.write_text(text)
    return dest


def base_hash() -> str:
    return hashlib.sha256(f"{SUITE}/minbase/{BASE_RECIPE_VERSION}".encode()).hexdigest()[:16]


def apt_source_files() -> list[Path]:
    """The host's active apt source files (one-line and deb822 formats)."""
    files = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        files += sorted(p for p in sources_d.iterdir() if p.suffix in {".list", ".sources"})
    return [f for f in files if f.is_file() and f.stat().st_size > 0]


_DEB822_URI = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE)
_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", re.MULTILINE)


def debian_mirror() -> str:
    """The Debian mirror URL the host's apt uses for the main archive (not the security archive)."""
    for path in apt_source_files():
        text = path.read_text()
        candidates = _DEB822_URI.findall(text) if path.suffix == ".sources" else [m[0] for m in _ONE_LINE.findall(text)]
        for uri in candidates:
            if "security" not in uri and "/debian" in uri:
                return str(uri)
    raise ImageBuildError("no Debian mirror found in the host's apt sources")


def build_base(progress: Progress) -> None:
    """debootstrap + docker import, unless the base image with the current hash exists."""
    wanted = base_hash()
    if image_hash(BASE_TAG) == wanted:
        progress(f"base: cached ({BASE_TAG})")
        return
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("base: debootstrap is missing (scripts/setup-docker installs it)")
    mirror = debian_mirror()
    progress(f"base: debootstrap {SUITE} (minbase), a few minutes on a cold machine")
    with tempfile.TemporaryDirectory(prefix="bwvisu-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise ImageBuildError(f"base: debootstrap failed: {proc.stderr.decode()[-2000:]}")
        _prepare_rootfs(rootfs)
        progress("base: docker import")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            [
                "docker", "import",
                "--change", f"LABEL {HASH_LABEL}={wanted}",
                "--change", 'CMD ["/bin/bash"]',
                "-", BASE_TAG,
            ],
            stdin=tar.stdout, capture_output=True, check=False,
        )  # fmt: skip
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"base: docker import failed: {imported.stderr.decode()[-2000:]}")
    progress(f"base: built ({BASE_TAG})")


def _prepare_rootfs(rootfs: Path) -> None:
    """Apt sources from the host, no docs or recommends, empty caches: a small base that can install."""
    apt = rootfs / "etc/apt"
    for old in [apt / "sources.list", *(apt / "sources.list.d").glob("*")]:
        old.unlink(missing_ok=True)
    for src in apt_source_files():
        dest = apt / "sources.list" if src.name == "sources.list" else apt / "sources.list.d" / src.name
        shutil.copyfile(src, dest)
    (apt / "apt.conf.d/90bwvisu-testbed").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n'
    )
    (rootfs / "etc/dpkg/dpkg.cfg.d/90bwvisu-testbed").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n"
    )
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()


def build_image(spec: ImageSpec, parent_hash: str, progress: Progress) -> str:
    """Build one role's image unless cached; returns its input hash."""
    assert spec.parent is not None
    wanted = spec_hash(spec, parent_hash)
    tag = _tag(spec.role, wanted)
    if image_hash(tag) == wanted:
        progress(f"{spec.role}: cached ({tag})")
        return wanted
    progress(f"{spec.role}: building ({tag})")
    parent_tag = BASE_TAG if spec.parent == "base" else _tag(spec.parent, parent_hash)
    with tempfile.TemporaryDirectory(prefix=f"bwvisu-build-{spec.role}-") as tmp:
        context = build_context(spec, Path(tmp) / "context", parent_tag)
        cmd = ["docker", "build", "--label", f"{HASH_LABEL}={wanted}", "-t", tag, str(context)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_build_env()) as proc:
            assert proc.stdout is not None
            tail: list[str] = []
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                tail = [*tail[-40:], line]
                if line.startswith("Step "):
                    progress(f"{spec.role}: {line}")
            if proc.wait() != 0:
                raise ImageBuildError(f"{spec.role}: docker build failed:\n" + "\n".join(tail))
    progress(f"{spec.role}: built")
    return wanted


def _tag(role: str, input_hash: str) -> str:
    return f"{REPO}/{role}:{input_hash}"


def _build_env() -> dict[str, str]:
    # The classic builder prints one "Step i/n" line per instruction, which is our progress.
    return {**os.environ, "DOCKER_BUILDKIT": "0"}


def build_all(progress: Progress | None = None, roles: set[str] | None = None) -> dict[str, str]:
    """Build (or find cached) the base and every role image; returns role -> input hash."""
    say = progress or (lambda msg: log.info("%s", msg))
    build_base(say)
    hashes = {"base": base_hash()}
    for spec in IMAGES:
        if roles is not None and spec.role not in roles and not _is_parent_of_any(spec.role, roles):
            continue
        assert spec.parent is not None
        hashes[spec.role] = build_image(spec, hashes[spec.parent], say)
    return hashes


def _is_parent_of_any(role: str, roles: set[str]) -> bool:
    return any(spec.parent == role and spec.role in roles for spec in IMAGES)


def tag_for(role: str) -> str:
    """The local tag of a role's image as this checkout's files make it (``bwvisu-testbed/ROLE:HASH``)."""
    return BASE_TAG if role == "base" else _tag(role, input_hash(role))
