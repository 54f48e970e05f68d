"""What several e2e modules share: commands on the testbed as alice and through the site helpers, a runner's
settings for the testbed, an etcd round trip, and fetching from the public network."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path
from typing import Any

import docker

import runner
from containers.etcd_members import ETCD_PREFIX
from containers.nodes import ExecResult, wait_until
from containers.testbed import FORWARD, SLURM_AS, Testbed
from runner.config import settings_from_mapping
from runner.etcd import etcd_client
from runner.gateway import commands
from runner.gateway.iptables import ForwardRule
from runner.records import JobRecord
from runner.state import StateStore

AS_ALICE = f"sudo -n {SLURM_AS} alice"
SUBMIT = f"{AS_ALICE} sbatch --parsable --chdir=/home/alice"


def ok(result: ExecResult) -> str:
    assert result.ok, f"exit {result.exit_code}: {result.stderr or result.stdout}"
    return result.stdout


def squeue_row(testbed: Testbed, job_id: str) -> list[str]:
    out = ok(testbed.ssh("command1", f"squeue -h -o '%i|%T|%N|%u' -j {job_id}"))
    return out.strip().split("|") if out.strip() else []


def wait_running(testbed: Testbed, job_id: str) -> str:
    """Wait until squeue shows the job RUNNING; returns its node."""
    wait_until(f"job {job_id} RUNNING", lambda: squeue_row(testbed, job_id)[1:2] == ["RUNNING"], 60)
    return squeue_row(testbed, job_id)[2]


def sacct_state(testbed: Testbed, job_id: str) -> str:
    return ok(testbed.ssh("command1", f"sacct -P -n -X -o State -j {job_id}")).strip()


def port_open_from(testbed: Testbed, hostname: str, host: str, port: int) -> bool:
    return testbed.node(hostname).exec(["nc", "-z", "-w", "2", host, str(port)]).ok


def forward(testbed: Testbed, gateway: str, action: str, port: int, target: str) -> ExecResult:
    """Add (-A) or delete (-D) a forward gateway:port -> target as the runner does: through bwvisu-forward."""
    address, _, internal = target.rpartition(":")
    rule = ForwardRule("e2e", port, address, int(internal))
    if action == "-A":
        text = commands.edit_input(add=[rule])
    else:
        text = commands.edit_input(delete_dnat=[rule], delete_masquerade=[rule])
    chains = testbed.ssh(gateway, shlex.join(["sudo", "-n", FORWARD, "ensure-chains"]))
    return chains if not chains.ok else testbed.ssh(gateway, shlex.join(["sudo", "-n", FORWARD, "restore"]), text)


def exec_in(container: str, argv: list[str], user: str = "") -> tuple[int, str]:
    client = docker.from_env()
    try:
        done = client.containers.get(container).exec_run(argv, user=user)
        return int(done.exit_code), done.output.decode(errors="replace")
    finally:
        client.close()


FETCH = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    sys.stdout.write("%d\\n" % response.status)
    sys.stdout.write(response.read().decode(errors="replace"))
"""


def fetch(testbed: Testbed, url: str) -> tuple[int, str]:
    out = ok(testbed.node("client").exec(["python3", "-c", FETCH, url], user="alice"))
    status, _, body = out.partition("\n")
    return int(status), body


API_AUTH = ("bwvisu-web", "e2e-password")
# The runner's shipped templates, so the shipped Xpra template is the one proven on real Xpra.
TEMPLATES = Path(runner.__file__).parent / "templates"


def free_port_on(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        port: int = sock.getsockname()[1]
        return port


def runner_settings(testbed: Testbed, prefix: str, templates: Path = TEMPLATES) -> dict[str, Any]:
    host_ip = testbed.endpoints.cluster_host_ip
    return {
        **testbed.runner_config(keyhole_ip=host_ip, keyhole_port=free_port_on(host_ip)),
        "etcd_prefix": prefix,
        "templates_dir": str(templates),
        "api": {"user": API_AUTH[0], "password": API_AUTH[1]},
        "ssh": {
            "client_keys": [str(testbed.ssh_key.private_path)],
            "known_hosts": str(testbed.known_hosts_path),
            "command_timeout": 20,
            "connect_timeout": 10,
        },
        "watcher": {"interval": 0.5, "leader_ttl": 3},
    }


TOKEN = "e2e-job-token"


async def round_trip(testbed: Testbed, name: str, **etcd: str) -> str | None:
    """Store a job with its token through the runner's etcd configuration (``etcd`` overrides), read it back."""
    config = testbed.runner_config()
    config["etcd"] = {**config["etcd"], **etcd}
    settings = settings_from_mapping(config)
    client = etcd_client(settings.etcd_servers, settings.etcd, timeout=10)
    await client.connect()
    try:
        store = StateStore(client, f"{ETCD_PREFIX}/e2e-{testbed.run_id}-{name}")
        await store.create_job(JobRecord(job_id="j1", uid="alice", template_name="t.txt", variables={}), TOKEN)
        return await store.get_token("j1")
    finally:
        await client.close()
