"""Remove a testbed's containers and networks by label, whatever state they are in.

Used after every run (the fixture's finaliser, ``Testbed.stop``, ``bwvisu-testbed down``), so a failed
test or an interrupted start leaves nothing behind. Works on the Docker API directly: it must succeed even
when the objects that started the testbed are gone.
"""

from __future__ import annotations

import logging
import time

import docker
from docker.errors import APIError, NotFound

from containers.nodes import LABEL_CREATED, LABEL_RUN, LABEL_TESTBED

log = logging.getLogger(__name__)


def remove_by_label(run_id: str | None = None) -> tuple[int, int]:
    """Remove every testbed container and network (of one run, or of all runs); returns the counts removed."""
    selector = f"{LABEL_RUN}={run_id}" if run_id else f"{LABEL_TESTBED}=true"
    client = docker.from_env()
    try:
        containers = 0
        for container in client.containers.list(all=True, filters={"label": selector}):
            try:
                container.remove(force=True, v=True)
                containers += 1
            except NotFound:
                pass
            except APIError:
                log.warning("could not remove container %s", container.name, exc_info=True)
        networks = 0
        for network in client.networks.list(filters={"label": selector}):
            try:
                network.remove()
                networks += 1
            except NotFound:
                pass
            except APIError:
                log.warning("could not remove network %s", network.name, exc_info=True)
        return containers, networks
    finally:
        client.close()


def list_runs() -> dict[str, list[str]]:
    """Testbed run ids present on this Docker engine, each with its container names."""
    client = docker.from_env()
    try:
        runs: dict[str, list[str]] = {}
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_TESTBED}=true"}):
            run = container.labels.get(LABEL_RUN, "?")
            runs.setdefault(run, []).append(f"{container.name} ({container.status})")
        return runs
    finally:
        client.close()


def remove_stale(max_age_seconds: float) -> list[str]:
    """Remove testbeds whose containers are older than ``max_age_seconds`` (left by a killed run); their ids."""
    client = docker.from_env()
    try:
        now = time.time()
        stale = set()
        selector = {"label": f"{LABEL_TESTBED}=true"}
        # Networks too: a run killed between creating its networks and its first container leaves only those.
        objects = [*client.containers.list(all=True, filters=selector), *client.networks.list(filters=selector)]
        for obj in objects:
            labels = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
            created = labels.get(LABEL_CREATED, "")
            if created.isdigit() and now - int(created) > max_age_seconds:
                stale.add(labels.get(LABEL_RUN, ""))
    finally:
        client.close()
    for run in sorted(stale - {""}):
        log.warning("removing stale testbed %s", run)
        remove_by_label(run)
    return sorted(stale - {""})
