"""``bwvisu-testbed``: bring a local containerised cluster up, show it, bring it down.

``up`` builds images (cached) and starts a cluster, printing progress, then starts a runner attached to it
(in its own container on the cluster network, its API published on the host's loopback, see
:mod:`containers.runner_process`) and prints the runner's URL, credentials and a first curl; the state folder
holds the SSH key and known_hosts, etcd's CA and the runner's client certificate, and the runner's mounted copies
of them with its config.json (with etcd's password). The containers keep running after the command exits;
``down`` stops the runner and removes the containers by label. ``status`` lists running testbeds and their runners.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from containers import runner_process
from containers.cleanup import list_runs, remove_by_label
from containers.etcd_members import ETCD_PREFIX
from containers.images import build_all
from containers.testbed import Testbed, TestbedSpec

STATE_ROOT = Path(os.environ.get("BWVISU_TESTBED_STATE", Path.home() / ".cache" / "bwvisu-testbed"))


def _progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cmd_build(_: argparse.Namespace) -> int:
    t0 = time.monotonic()
    build_all(_progress)
    print(f"images ready in {time.monotonic() - t0:.1f} s")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    spec = TestbedSpec(compute=args.compute, gateways=args.gateways, command=args.command, etcd_members=args.etcd)
    staging = STATE_ROOT / f"starting-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    testbed = Testbed(spec, progress=_progress, workdir=staging)
    try:
        build_all(_progress, {"runner"})  # before the cluster starts: a cold build takes a minute
        testbed.start()
        state = STATE_ROOT / testbed.run_id
        testbed.move_workdir(state)
        key = testbed.ssh_key.private_path
        known_hosts = testbed.known_hosts_path
        _progress("starting the runner")
        prefix = f"{ETCD_PREFIX}/testbed-{testbed.run_id}"
        runner = runner_process.start(testbed, state, prefix=prefix, api_port=args.api_port, progress=_progress)
        runner_process.wait_ready(runner, args.runner_timeout)
    except BaseException:
        _progress("start failed; removing what was started")
        if (STATE_ROOT / testbed.run_id).is_dir():
            runner_process.stop(STATE_ROOT / testbed.run_id)
        testbed.stop()
        raise
    ep = testbed.endpoints
    print(f"\ntestbed {testbed.run_id} is up (images {testbed.timings['images']:.1f} s, "
          f"ready {testbed.timings['ready']:.1f} s); state in {state}")  # fmt: skip
    print(f"runner:       {runner.url}   (container {runner.container}, log: docker logs {runner.container})")
    print(f"credentials:  {runner.user} / {runner.password}")
    print(f"runner configuration: {state / runner_process.CONFIG_FILE}")
    print("first curl:")
    for line in runner.curl_lines():
        print(f"  {line}")
    print("nodes:")
    for node in [*ep.command, *ep.gateways]:
        print(f"  {node.hostname:10} cluster {node.cluster_ip:15} public {node.public_ip or '-':15} "
              f"ssh -i {key} -o UserKnownHostsFile={known_hosts} -p {node.ssh_port} bwvisu@127.0.0.1")  # fmt: skip
    for node in [ep.controller, *ep.compute, *ep.etcd]:
        print(f"  {node.hostname:10} cluster {node.cluster_ip:15} container {node.container}")
    print(f"bring it down: bwvisu-testbed down {testbed.run_id}")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    runs = list_runs()
    if not runs:
        print("no testbed running")
        return 0
    for run, containers in sorted(runs.items()):
        state = STATE_ROOT / run
        print(f"testbed {run}" + (f" (state {state})" if state.exists() else ""))
        runner = runner_process.info(state)
        if runner is not None:
            container = runner_process.status(runner) or "gone"
            answering = "answering" if container == "running" and runner_process.answers(runner) else "not answering"
            print(f"  runner {runner.container} {container}, {runner.url} {answering}")
        for line in sorted(containers):
            print(f"  {line}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    run = None if args.all else args.run
    if run is None and not args.all:
        # Only testbeds this CLI started (they have a state folder): tests may be running others.
        runs = [r for r in list_runs() if (STATE_ROOT / r).is_dir()]
        if len(runs) != 1:
            print(f"name a run id or pass --all; started here: {', '.join(runs) or 'none'}", file=sys.stderr)
            return 2
        run = runs[0]
    states = [STATE_ROOT / run] if run else list(STATE_ROOT.glob("*"))
    for state in states:
        stopped = runner_process.stop(state)
        if stopped is not None:
            print(f"stopped runner {stopped}")
    containers, networks = remove_by_label(run)
    for state in states:
        shutil.rmtree(state, ignore_errors=True)
    print(f"removed {containers} containers and {networks} networks")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bwvisu-testbed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find cached) all images, the runner's too").set_defaults(func=cmd_build)
    up = sub.add_parser("up", help="start a cluster and leave it running")
    up.add_argument("--compute", type=int, default=2)
    up.add_argument("--gateways", type=int, default=2)
    up.add_argument("--command", type=int, default=1)
    up.add_argument("--etcd", type=int, default=1, choices=(1, 3))
    up.add_argument("--api-port", type=int, default=0, help="runner API port on 127.0.0.1 (default: a free one)")
    up.add_argument("--runner-timeout", type=float, default=60.0, help="seconds to wait for the runner's API")
    up.set_defaults(func=cmd_up)
    sub.add_parser("status", help="list running testbeds").set_defaults(func=cmd_status)
    down = sub.add_parser("down", help="remove a testbed's containers and networks")
    down.add_argument("run", nargs="?")
    down.add_argument("--all", action="store_true", help="remove every testbed on this Docker engine")
    down.set_defaults(func=cmd_down)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
