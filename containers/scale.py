"""The testbed at scale: its runner in a container, a light listener per job, every job reached through its forward.

:func:`start_runner` starts the testbed's runner container (:mod:`containers.runner_process`) with two testbed-only
templates mounted beside its keys: :data:`LISTENER_TEMPLATE`, a job that asks the keyhole service for one port and
answers every connection on it with its own names (:func:`expected_answer`: the Slurm job name, which carries the
runner's job id, and the Slurm job id), so a check can tell the forwards apart; and :data:`TRUE_TEMPLATE`, a job
that ends at once (submission rates). :func:`reach_all` connects to every forward from the client container on
the public network, as users would; :func:`gateway_rules`, :func:`sdiag` and :func:`runner_usage` read what the
gateways, slurmctld and the runner's process hold, as root inside their containers (measurements only: the runner
itself goes through its SSH accounts).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker

from containers import runner_process
from containers.runner_process import CONFIG_DIR, RunnerInfo
from runner.slurm.cli import job_name

if TYPE_CHECKING:
    from containers.testbed import Testbed

LISTENER_TEMPLATE = "template_scale_listener.txt"
TRUE_TEMPLATE = "template_scale_true.txt"
TEMPLATES = {
    LISTENER_TEMPLATE: """\
#!/bin/bash
#SBATCH --time={{minutes}}
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
# Testbed only: a light listener on the keyhole port that answers every connection with its job's names
# (the Slurm job name carries the runner's job id), so each forward can be told apart. It holds no secret.
#KEYHOLE-REQUEST-PORTS 1
exec python3 -c '
import os, socket, sys
answer = ("%s %s\\n" % (os.environ["SLURM_JOB_NAME"], os.environ["SLURM_JOB_ID"])).encode()
server = socket.create_server(("0.0.0.0", int(sys.argv[1])), backlog=128)
while True:
    conn, _ = server.accept()
    with conn:
        try:
            conn.sendall(answer)
        except OSError:
            pass
' "$KEYHOLE_PORT0"
""",
    TRUE_TEMPLATE: """\
#!/bin/bash
#SBATCH --time=1
true
""",
}
TRUE_SCRIPT = TEMPLATES[TRUE_TEMPLATE]
"""What a :data:`TRUE_TEMPLATE` job's script is once rendered (it has no variables): the rate baselines send it."""
TEMPLATE_DIR = "templates"


def expected_answer(job_id: str, slurm_id: str) -> str:
    """What the listener of runner job ``job_id`` (Slurm job ``slurm_id``) answers."""
    return f"{job_name(job_id)} {slurm_id}"


def start_runner(bed: Testbed, state: Path, *, prefix: str, watcher_interval: float = 1.0) -> RunnerInfo:
    """Start ``bed``'s runner container with the scale templates; returns once its API answers."""
    sources = state / "scale-templates"
    sources.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, text in TEMPLATES.items():
        (sources / name).write_text(text)
        files[f"{TEMPLATE_DIR}/{name}"] = sources / name
    extra = {"templates_dir": f"{CONFIG_DIR}/{TEMPLATE_DIR}", "watcher": {"interval": watcher_interval}}
    info = runner_process.start(bed, state, prefix=prefix, extra_config=extra, extra_files=files)
    runner_process.wait_ready(info, timeout=120)
    return info


_REACH = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def one(target):
    error = ""
    for _ in range(3):
        try:
            with socket.create_connection((target[0], target[1]), timeout=10) as conn:
                data = b""
                while True:
                    chunk = conn.recv(512)
                    if not chunk:
                        return data.decode(errors="replace").strip()
                    data += chunk
        except OSError as exc:
            error = "error: %s" % exc
    return error
with ThreadPoolExecutor(32) as pool:
    print(json.dumps(list(pool.map(one, json.loads(sys.argv[1])))))
"""


def reach_all(bed: Testbed, targets: list[tuple[str, int]]) -> list[str]:
    """Connect to every (public address, port) from the client container; each answer, or ``error: ...``."""
    if not targets:
        return []
    got = bed.node("client").exec(["python3", "-c", _REACH, json.dumps(targets)])
    if not got.ok:
        raise RuntimeError(f"the client could not run its checks: {got.stderr[-2000:]}")
    answers: list[str] = json.loads(got.stdout)
    return answers


@dataclass(frozen=True)
class GatewayRules:
    """The runner's rules on one gateway: DNAT rules (one per forward) and all rules carrying a runner job's mark."""

    dnat: int
    total: int


def gateway_rules(bed: Testbed) -> dict[str, GatewayRules]:
    """Gateway hostname -> the runner's rules there, from ``iptables-save`` run as root in the gateway."""
    rules: dict[str, GatewayRules] = {}
    for node in bed.nodes_of("gateway"):
        saved = node.exec(["iptables-save"])
        if not saved.ok:
            raise RuntimeError(f"{node.hostname}: iptables-save failed: {saved.stderr}")
        runner_rules = [line for line in saved.stdout.splitlines() if line.startswith("-A ") and '"bwvisu:' in line]
        rules[node.hostname] = GatewayRules(sum("-j DNAT" in line for line in runner_rules), len(runner_rules))
    return rules


_RPC_LINE = re.compile(r"^\s*(\S+)\s+\(\s*\d+\)\s+count:(\d+)")


def parse_sdiag(text: str) -> dict[str, int]:
    """RPC message type -> count from ``sdiag``'s "by message type" section (the "by user" one is left out)."""
    counts: dict[str, int] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("Remote Procedure Call statistics by message type"):
            inside = True
        elif line.startswith("Remote Procedure Call statistics by user"):
            break
        elif inside and (match := _RPC_LINE.match(line)):
            counts[match[1]] = int(match[2])
    return counts


def sdiag(bed: Testbed, reset: bool = False) -> dict[str, int]:
    """slurmctld's RPC counts by message type (``sdiag`` as root); ``reset`` zeroes them afterwards."""
    controller = bed.node("controller")
    got = controller.exec(["sdiag"])
    if not got.ok:
        raise RuntimeError(f"sdiag failed: {got.stderr}")
    if reset and not controller.exec(["sdiag", "--reset"]).ok:
        raise RuntimeError("sdiag --reset failed")
    return parse_sdiag(got.stdout)


_USAGE = """
import os, sys
tick = os.sysconf("SC_CLK_TCK")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\\0")
        stat = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
        rss = [l for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS:")]
    except OSError:
        continue
    if b"runner" in cmd and b"serve" in cmd and int(pid) not in (1, os.getpid()) and rss:  # 1: tini
        print(int(rss[0].split()[1]) * 1024, (int(stat[11]) + int(stat[12])) / tick)
"""


def runner_usage(info: RunnerInfo) -> tuple[int, float]:
    """The runner process's resident memory (bytes) and CPU seconds so far, read from ``/proc`` in its container."""
    client = docker.from_env()
    try:
        container = client.containers.get(info.container)
        result = container.exec_run(["/opt/bwvisu-runner/bin/python", "-c", _USAGE])
    finally:
        client.close()
    lines = result.output.decode().split("\n") if result.exit_code == 0 else []
    rows = [line.split() for line in lines if line.strip()]
    if len(rows) != 1:
        raise RuntimeError(f"cannot find the runner's process in {info.container}: {result.output[-500:]!r}")
    return int(rows[0][0]), float(rows[0][1])


def ssh_command_line(bed: Testbed, hostname: str, argv: list[str]) -> list[str]:
    """A new real OpenSSH connection that runs ``argv`` (joined for the remote shell) on ``hostname``."""
    return [*bed.ssh_argv(hostname), shlex.join(argv)]
