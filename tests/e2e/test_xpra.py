"""An Xpra session as a Slurm job, used from the public network through a gateway forward.

The job runs ``xpra start --bind-tcp=0.0.0.0:PORT --tcp-auth=file:... --html=on --start=xterm --daemon=no`` as
alice, with its password in a file only alice can read; a DNAT rule on a gateway forwards gateway-public:port to
it; the client container fetches the HTML5 client page, its jQuery (Debian's libjs-jquery) and ``/Status``, and
the real Xpra client is refused without the password and identifies the session with it.
"""

from __future__ import annotations

import pytest

from containers.nodes import wait_until
from containers.testbed import Testbed
from tests.e2e.e2e_support import AS_ALICE, SUBMIT, fetch, forward, ok, port_open_from, sacct_state, wait_running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

XPRA_OPTIONS = (
    "--html=on --start=xterm --daemon=no --mdns=no --pulseaudio=no --notifications=no --systemd-run=no "
    "--webcam=no --printing=no --dbus-proxy=no --dbus-launch= --dbus-control=no"
)


PASSWORD = "cluster-test-session-pw_1"


def xpra_script(port: int) -> str:
    return (
        "#!/bin/bash\n#SBATCH --job-name=xpra --time=10\numask 077\nd=$(mktemp -d)\n"
        f'printf %s {PASSWORD} >"$d/pw"\n'
        f'exec xpra start --bind-tcp=0.0.0.0:{port} --tcp-auth="file:filename=$d/pw" {XPRA_OPTIONS}\n'
    )


def test_xpra_session_through_gateway(testbed: Testbed) -> None:
    ep = testbed.endpoints
    port, external = 50201, 51201
    job_id = ok(testbed.ssh("command1", SUBMIT, stdin=xpra_script(port))).strip()
    node = wait_running(testbed, job_id)
    compute_ip = next(c.cluster_ip for c in ep.compute if c.hostname == node)
    gateway = ep.gateways[1]
    assert gateway.public_ip is not None
    wait_until(
        f"xpra of job {job_id} listening", lambda: port_open_from(testbed, gateway.hostname, compute_ip, port), 60
    )

    ok(forward(testbed, gateway.hostname, "-A", external, f"{compute_ip}:{port}"))
    try:
        base = f"http://{gateway.public_ip}:{external}"
        status, page = fetch(testbed, f"{base}/")
        assert status == 200
        assert "<title>Xpra HTML5 Client</title>" in page or "Xpra" in page
        status, jquery = fetch(testbed, f"{base}/js/lib/jquery.js")
        assert status == 200
        assert "jQuery JavaScript Library" in jquery
        assert fetch(testbed, f"{base}/Status") == (200, "ready")

        client = testbed.node("client")
        address = f"tcp://{gateway.public_ip}:{external}/"
        refused = client.exec(["xpra", "id", address], user="alice")
        assert refused.exit_code == 3, refused  # EXIT_PASSWORD_REQUIRED
        assert "authentication required" in refused.stdout + refused.stderr
        ok(client.exec(["sh", "-c", "umask 077 && cat >/tmp/xpra-pw"], user="alice", stdin=PASSWORD))
        ident = client.exec(["xpra", "id", "--password-file=/tmp/xpra-pw", address], user="alice")
        assert ident.ok, ident.stderr
        assert "session-name=" in ident.stdout
        assert "xterm" in ident.stdout
        assert not port_open_from(testbed, "client", compute_ip, port)
    finally:
        ok(forward(testbed, gateway.hostname, "-D", external, f"{compute_ip}:{port}"))

    ok(testbed.ssh("command1", f"{AS_ALICE} scancel {job_id}"))
    wait_until(f"job {job_id} CANCELLED", lambda: sacct_state(testbed, job_id).startswith("CANCELLED"), 60)
    wait_until(
        f"xpra of job {job_id} gone", lambda: not port_open_from(testbed, gateway.hostname, compute_ip, port), 30
    )
