"""``python -m simulator``: start a simulated cluster from a JSON/TOML config (or the default) and keep it up.

Prints the SSH endpoints, the client key, the known_hosts file and a runner config fragment, then runs
until interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import tomllib
from pathlib import Path

from simulator.cluster import SimCluster
from simulator.config import ClusterConfig


def load_config(path: Path | None) -> ClusterConfig:
    if path is None:
        return ClusterConfig.default()
    text = path.read_text()
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return ClusterConfig.model_validate(data)


def describe(cluster: SimCluster) -> str:
    lines = [f"cluster {cluster.config.cluster_name}"]
    lines += [f"  command {e.node}: ssh -p {e.port} {e.user}@{e.host}" for e in cluster.command_nodes]
    lines += [
        f"  gateway {g.node}: ssh -p {g.port} {g.user}@{g.host} (external {g.external_ip})"
        for g in cluster.gateway_nodes
    ]
    lines += [f"  compute {c.name}: {c.address}" for c in cluster.compute_nodes]
    lines += [
        f"  client key: {cluster.client_key_path}",
        f"  known_hosts: {cluster.known_hosts_path}",
        f"  hosts file: {cluster.hosts_file}",
        f"  home prefix: {cluster.home_prefix}",
        "runner config fragment:",
        json.dumps(cluster.runner_config(), indent=2),
    ]
    return "\n".join(lines)


async def run(config: ClusterConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with SimCluster(config) as cluster:
        print(describe(cluster), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path, help="cluster config (.json or .toml); default: small cluster")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run(load_config(args.config)))


if __name__ == "__main__":
    main()
