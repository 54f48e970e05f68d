"""How long the testbed takes to build and to start: cold and cached image builds, start until ready.

The cold build never touches the shared ``bwvisu-testbed/*`` images other runs use: it builds the base
(``debootstrap`` + ``docker import``) and every role image with ``--no-cache`` under a throwaway tag prefix,
from copies of the role folders whose ``FROM`` lines point at that prefix, labels each image with the
run's id, and removes exactly those tags and labelled images afterwards, also after a failure.
The cached build and the start-up are the normal paths (:func:`containers.images.build_all`,
:meth:`containers.testbed.Testbed.start`), timed from outside.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from containers import images
from containers.testbed import Testbed, TestbedSpec

log = logging.getLogger(__name__)

BENCH_LABEL = "org.bwvisu.bench.run"
# Bounds for one step of the cold build; on this 2-core machine the slowest (compute) takes about a minute.
DEBOOTSTRAP_TIMEOUT_S = 900.0
BUILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ColdBuild:
    """Seconds for the base image (debootstrap, then import) and for each role image built without cache."""

    debootstrap: float
    base_import: float
    roles: dict[str, float]

    @property
    def total(self) -> float:
        return self.debootstrap + self.base_import + sum(self.roles.values())


def _run(argv: list[str], timeout: float, what: str) -> None:
    # The classic builder, as images.py uses: the same steps, so the same cost.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, env=env)
    if proc.returncode != 0:
        raise images.ImageBuildError(f"{what} failed: {proc.stderr.decode(errors='replace')[-2000:]}")


def _throwaway_tag(prefix: str, role: str) -> str:
    return f"{prefix}/base:{images.SUITE}" if role == "base" else f"{prefix}/{role}:latest"


def _cold_base(prefix: str, run: str, workdir: Path) -> tuple[float, float]:
    """debootstrap and import the base under the throwaway prefix; returns (debootstrap, import) seconds."""
    if shutil.which("debootstrap") is None:
        raise images.ImageBuildError("base: debootstrap is missing (scripts/setup-docker installs it)")
    rootfs = workdir / "rootfs"
    t0 = time.perf_counter()
    _run(
        ["debootstrap", "--variant=minbase", images.SUITE, str(rootfs), images.debian_mirror()],
        DEBOOTSTRAP_TIMEOUT_S,
        "base: debootstrap",
    )
    t1 = time.perf_counter()
    images._prepare_rootfs(rootfs)  # the same recipe as the shared base, by construction
    tarball = workdir / "rootfs.tar"
    _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], BUILD_TIMEOUT_S, "base: tar")
    argv = ["docker", "import", "--change", f"LABEL {BENCH_LABEL}={run}", "--change", 'CMD ["/bin/bash"]']
    _run([*argv, str(tarball), _throwaway_tag(prefix, "base")], BUILD_TIMEOUT_S, "base: docker import")
    return t1 - t0, time.perf_counter() - t1


def _cold_role(spec: images.ImageSpec, prefix: str, run: str, workdir: Path) -> float:
    """Build one role from a copy of its folder whose FROM names the throwaway parent; returns seconds."""
    assert spec.parent is not None
    context = images.build_context(spec, workdir / spec.role, _throwaway_tag(prefix, spec.parent))
    argv = ["docker", "build", "--no-cache", "--force-rm", "--quiet", "--label", f"{BENCH_LABEL}={run}"]
    started = time.perf_counter()
    _run([*argv, "-t", _throwaway_tag(prefix, spec.role), str(context)], BUILD_TIMEOUT_S, f"{spec.role}: build")
    return time.perf_counter() - started


def remove_throwaway_images(run: str) -> int:
    """Remove this run's tags (children before parents), then any image still labelled with its id."""
    prefix = f"bwvisu-bench-{run}"
    tags = [_throwaway_tag(prefix, spec.role) for spec in reversed(images.IMAGES)] + [_throwaway_tag(prefix, "base")]
    removed = 0
    for tag in tags:
        proc = subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=120, check=False)
        removed += proc.returncode == 0
    listed = subprocess.run(
        ["docker", "image", "ls", "-q", "--filter", f"label={BENCH_LABEL}={run}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    for image_id in dict.fromkeys(listed.stdout.split()):
        proc = subprocess.run(["docker", "rmi", image_id], capture_output=True, timeout=120, check=False)
        removed += proc.returncode == 0
    return removed


def cold_build() -> ColdBuild:
    """Build the base and every role image from scratch under a throwaway prefix, then remove them."""
    run = secrets.token_hex(4)
    prefix = f"bwvisu-bench-{run}"
    try:
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            workdir = Path(tmp)
            log.info("cold build %s: base (debootstrap %s)", run, images.SUITE)
            debootstrap, base_import = _cold_base(prefix, run, workdir)
            roles: dict[str, float] = {}
            for spec in images.IMAGES:
                log.info("cold build %s: %s", run, spec.role)
                roles[spec.role] = _cold_role(spec, prefix, run, workdir)
            return ColdBuild(debootstrap, base_import, roles)
    finally:
        removed = remove_throwaway_images(run)
        log.info("cold build %s: removed %d throwaway images", run, removed)


def images_current() -> bool:
    """Whether the base and every role image exist with their current input hash (nothing would build)."""
    hashes = images.input_hashes()
    return all(images.image_hash(images.tag_for(role)) == wanted for role, wanted in hashes.items())


def cached_build() -> float:
    """Seconds for the normal build path when every image is present and unchanged (hash checks only)."""
    started = time.perf_counter()
    images.build_all(lambda msg: log.debug("%s", msg))
    return time.perf_counter() - started


def start_testbed(spec: TestbedSpec) -> tuple[Testbed, float]:
    """Start a testbed (cached images); returns it, ready, with the seconds from ``start()`` to ready.

    The caller stops it; a failed start has already removed its containers.
    """
    bed = Testbed(spec, progress=lambda msg: log.debug("%s", msg))
    started = time.perf_counter()
    bed.start()
    return bed, time.perf_counter() - started
