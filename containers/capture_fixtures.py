"""Capture real Slurm 22.05 outputs from the containerised cluster as text fixtures.

``python -m containers.capture_fixtures [--out tests/fixtures/slurm]`` starts a small testbed, drives it
over SSH exactly as the runner does by default (bwVisu's ``sudo -n -u USER <slurm command>`` on a command node, as
the testbed's bwVisu-compatible account ``bwvisu-compat``; batch scripts
on stdin), and writes each command's stdout to ``<name>.txt`` (stderr to ``<name>.stderr.txt`` when there
is any) plus ``manifest.json`` with the exact command, stdin, exit status and the job ids of that run.
Then the differential harness's two rounds (``tests/contract/differential.py``: its jobs and every command line
of its vocabulary) run on the same cluster and their answers go to ``differential.json``, which the integration
tier compares the simulator with, without Docker. The simulator's parsers and output formats are checked against
these files. Takes about five minutes (each round's TIMEOUT needs a one-minute time limit to expire).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containers.nodes import wait_until
from containers.testbed import COMPAT_USER, Testbed, TestbedSpec

log = logging.getLogger(__name__)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "slurm"
SUDO_ALICE = "sudo -n -u alice"
SQUEUE_FIELDS = "%i|%T|%N|%u|%j|%M|%l|%D|%r"
SQUEUE_O_FIELDS = "JobID,State,NodeList,UserName,Name,TimeUsed,TimeLimit,NumNodes,Reason"
SACCT_FIELDS = "JobID,JobName,User,State,ExitCode,Start,End,Elapsed,NodeList,Reason"


@dataclass
class Capture:
    """Runs commands on a command node and records them."""

    testbed: Testbed
    out: Path
    node: str = "command1"
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, command: str, stdin: str | None = None, record: bool = True) -> tuple[int, str, str]:
        result = self.testbed.ssh(self.node, command, stdin=stdin, user=COMPAT_USER)
        if record:
            (self.out / f"{name}.txt").write_text(result.stdout)
            stderr_path = self.out / f"{name}.stderr.txt"
            if result.stderr:
                stderr_path.write_text(result.stderr)
            else:
                stderr_path.unlink(missing_ok=True)
            entry: dict[str, Any] = {"command": command, "exit_status": result.exit_code}
            if stdin is not None:
                entry["stdin"] = stdin
            self.manifest[name] = entry
            log.info("%s: exit %d", name, result.exit_code)
        return result.exit_code, result.stdout, result.stderr

    def submit(self, name: str | None, script: str, options: str = "") -> str:
        # The runner gives every job its working directory; the runner account's own home is not alice's.
        command = f"{SUDO_ALICE} sbatch --parsable --chdir=/home/alice {options}".strip()
        code, stdout, stderr = self.run(name or "", command, stdin=script, record=name is not None)
        if code != 0:
            raise RuntimeError(f"sbatch failed: {stderr}")
        return stdout.strip().split(";")[0]

    def state(self, job_id: str) -> str:
        _, stdout, _ = self.run("", f"{SUDO_ALICE} sacct -P -n -X -o State -j {job_id}", record=False)
        return stdout.strip()

    def wait_state(self, job_id: str, prefix: str, timeout: float) -> None:
        wait_until(f"job {job_id} {prefix}", lambda: self.state(job_id).startswith(prefix), timeout, interval=1)


SLEEP = "#!/bin/bash\nsleep 300\n"


def capture_all(cap: Capture) -> dict[str, str]:
    """Drive every scenario; returns the job ids by role, for the manifest."""
    jobs: dict[str, str] = {}
    capture_submissions(cap, jobs)
    capture_queue_views(cap, jobs)
    capture_end_states(cap, jobs)
    capture_user_lookup(cap)
    capture_differential(cap, jobs)
    capture_controller_faults(cap, jobs)
    return jobs


DIFFERENTIAL = "differential.json"


def capture_differential(cap: Capture, jobs: dict[str, str]) -> None:
    """The differential harness's rounds on this cluster, recorded; its jobs cancelled afterwards."""
    # the harness lives with the tests it serves; imported here only, as only this step needs it
    from tests.contract import differential, differential_clusters, differential_gateway  # noqa: PLC0415

    for role in ("running2", "held", "begin", "too_many_nodes"):  # its rounds list the whole queue
        cap.run("", f"{SUDO_ALICE} scancel {jobs[role]}", record=False)

    async def go() -> dict[str, Any]:
        side = differential_clusters.testbed_side(cap.testbed)
        try:
            recording = await differential.record(side)
            assert side.gateway is not None
            recording["gateway"] = await differential_gateway.record_gateway(side.gateway)
            return recording
        finally:
            await side.run(f"sudo -n -u alice scancel {' '.join(side.jobs.values())}")
            await side.close()

    recording = asyncio.run(go())
    (cap.out / DIFFERENTIAL).write_text(json.dumps(recording, indent=1) + "\n")
    log.info("%s: %d + %d answers", DIFFERENTIAL, len(recording["answers"]), len(recording["gateway"]["answers"]))


def capture_submissions(cap: Capture, jobs: dict[str, str]) -> None:
    """Submission, in both output styles, with the directives the runner uses; submission errors."""
    directives = (
        "#!/bin/bash\n#SBATCH --job-name=bwvisu-xpra\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n"
        "#SBATCH --time=10\n#SBATCH --comment=bwvisu-runner\n#SBATCH --chdir=/home/alice\n"
        "#SBATCH --output=/home/alice/bwvisu-job-%j.out\nsleep 300\n"
    )
    jobs["running"] = cap.submit("sbatch_parsable", directives)
    _, stdout, _ = cap.run("sbatch_plain", f"{SUDO_ALICE} sbatch --chdir=/home/alice", stdin=SLEEP)
    jobs["running2"] = stdout.split()[-1]
    jobs["held"] = cap.submit("sbatch_parsable_hold", SLEEP, "--hold")
    jobs["begin"] = cap.submit(None, SLEEP, "--begin=now+3600")
    cap.wait_state(jobs["running"], "RUNNING", 60)
    cap.wait_state(jobs["running2"], "RUNNING", 60)

    cap.run("sbatch_invalid_partition", f"{SUDO_ALICE} sbatch --parsable -p nosuch", stdin=SLEEP)
    cap.run("sbatch_invalid_time", f"{SUDO_ALICE} sbatch --parsable --time=bogus", stdin=SLEEP)
    jobs["too_many_nodes"] = cap.submit("sbatch_too_many_nodes", SLEEP, "--nodes=50")
    cap.run("sbatch_no_shebang", f"{SUDO_ALICE} sbatch --parsable", stdin="sleep 1\n")
    cap.run("sudo_unknown_user", "sudo -n -u nosuchuser sbatch --parsable", stdin=SLEEP)


def capture_queue_views(cap: Capture, jobs: dict[str, str]) -> None:
    """Queue views: default, the runner's formats, filters, errors."""
    running, held = jobs["running"], jobs["held"]
    cap.run("squeue_default", "squeue")
    cap.run("squeue_h_o", f"squeue -h -o {shlex.quote(SQUEUE_FIELDS)}")
    cap.run("squeue_h_o_jobs", f"squeue -h -o {shlex.quote(SQUEUE_FIELDS)} -j {running},{held}")
    cap.run("squeue_O", f"squeue -O {SQUEUE_O_FIELDS}")
    cap.run("squeue_h_O_pipe", "squeue -h -O 'JobID:|,State:|,NodeList:|,UserName:|,Reason:'")
    cap.run("squeue_u_alice_t_running", "squeue -h -u alice -t RUNNING -o '%i %T'")
    cap.run("squeue_t_pending", "squeue -h -t PENDING -o '%i|%T|%r'")
    cap.run("squeue_j_unknown", "squeue -h -j 999999")
    cap.run("squeue_j_unknown_and_known", f"squeue -h -o '%i|%T' -j 999999,{running}")
    cap.run("scontrol_show_job_running", f"scontrol show job {running}")
    cap.run("scontrol_show_job_pending", f"scontrol show job {held}")
    cap.run("scontrol_show_job_oneliner", f"scontrol show job -o {running}")
    cap.run("scontrol_show_job_unknown", "scontrol show job 999999")
    cap.run("sacct_running_pending", f"{SUDO_ALICE} sacct -P -n -X -o {SACCT_FIELDS} -j {running},{held}")


def capture_end_states(cap: Capture, jobs: dict[str, str]) -> None:
    """End states: completed, failed, cancelled, timeout."""
    running = jobs["running"]
    jobs["completed"] = cap.submit(None, "#!/bin/bash\necho hello\n")
    jobs["failed"] = cap.submit(None, "#!/bin/bash\nexit 3\n")
    jobs["timeout"] = cap.submit(None, SLEEP, "--time=1")
    cap.run("scancel", f"{SUDO_ALICE} scancel {running}")
    cap.run("scancel_unknown", f"{SUDO_ALICE} scancel 999999")
    cap.run("scancel_unknown_verbose", f"{SUDO_ALICE} scancel -v 999999")
    cap.run("scancel_other_users_job", f"sudo -n -u bob scancel {jobs['running2']}")
    cap.wait_state(jobs["completed"], "COMPLETED", 60)
    cap.wait_state(jobs["failed"], "FAILED", 60)
    cap.wait_state(running, "CANCELLED", 60)
    cap.run("squeue_after_cancel", f"squeue -h -o {shlex.quote(SQUEUE_FIELDS)} -j {running}")
    cap.wait_state(jobs["timeout"], "TIMEOUT", 180)
    ended = ",".join(jobs[k] for k in ("completed", "failed", "timeout")) + f",{running}"
    cap.run("sacct_end_states", f"{SUDO_ALICE} sacct -P -n -X -o {SACCT_FIELDS} -j {ended}")
    cap.run("sacct_end_states_steps", f"{SUDO_ALICE} sacct -P -n -o JobID,State,ExitCode -j {ended}")
    cap.run("sacct_default", f"{SUDO_ALICE} sacct -j {ended}")
    cap.run("sacct_unknown", f"{SUDO_ALICE} sacct -P -n -X -o JobID,State -j 999999")


def capture_user_lookup(cap: Capture) -> None:
    """User lookup, as the check-user endpoint does it."""
    cap.run("id_alice", "id alice")
    cap.run("id_unknown", "id nosuchuser")
    cap.run("getent_passwd_alice", "getent passwd alice")
    cap.run("getent_passwd_unknown", "getent passwd nosuchuser")


def capture_controller_faults(cap: Capture, jobs: dict[str, str]) -> None:
    """Controller unresponsive (its container frozen), then down (slurmctld stopped, host still up)."""
    held = jobs["held"]  # cancelled already: with slurmctld down any id gets the connect failure
    controller = cap.testbed.node("controller")
    wrapped = controller.container.get_wrapped_container()
    wrapped.pause()
    try:
        cap.run("squeue_controller_unresponsive", f"squeue -h -o {shlex.quote(SQUEUE_FIELDS)}")
    finally:
        wrapped.unpause()
    controller.exec(["scontrol", "shutdown", "slurmctld"])
    wait_until("slurmctld stopped", lambda: not controller.exec(["pgrep", "-x", "slurmctld"]).ok, 30)
    cap.run("scontrol_ping_controller_down", "scontrol ping")
    cap.run("squeue_controller_down", f"squeue -h -o {shlex.quote(SQUEUE_FIELDS)}")
    cap.run("sbatch_controller_down", f"{SUDO_ALICE} sbatch --parsable --chdir=/home/alice", stdin=SLEEP)
    cap.run("scancel_controller_down", f"{SUDO_ALICE} scancel {held}")


NOTES = [
    "## Behaviour worth copying (seen in these captures)",
    "",
    "- Accounting lags the queue: right after `squeue` shows a job RUNNING, `sacct` may still say PENDING.",
    "- `scancel` of an unknown job id prints nothing and exits 0; only `-v` shows the error text.",
    "- `squeue -j` with only unknown ids fails (exit 1, `slurm_load_jobs error: Invalid job id specified`);",
    "  mixed with a known id it exits 0 and lists the known one. Ended jobs drop out of `squeue` unless `-t all`.",
    "- A job whose node count exceeds the partition is accepted and stays PENDING with reason PartitionConfig.",
    "- `sacct` shows `CANCELLED by <uid>`; in the step view a TIMEOUT job's batch step is `FAILED 15:0` and",
    "  a cancelled job's batch step `CANCELLED 0:15`.",
    "- Controller down (slurmctld stopped, host up): `Unable to contact slurm controller (connect failure)`;",
    "  frozen controller: `Socket timed out on send/recv operation` after MessageTimeout (10 s here).",
    "  `scancel` exits non-zero there, unlike for an unknown id.",
]


def write_readme(out: Path, manifest: dict[str, dict[str, Any]], jobs: dict[str, str]) -> None:
    lines = [
        "# Real Slurm 22.05 outputs",
        "",
        "Captured from the containerised cluster (Debian bookworm's Slurm 22.05, slurmdbd accounting) by",
        "`python -m containers.capture_fixtures`; regenerate with the same command. Each `<name>.txt` is the",
        "command's stdout, `<name>.stderr.txt` its stderr (only when non-empty); `manifest.json` has the exact",
        "command, the script given on stdin, the exit status, and the job ids of the run that produced them.",
        "Commands ran over SSH as the runner's bwVisu-compatible account (`bwvisu-compat`) on a command node;",
        "`sudo -n -u alice` is how the runner acts as a user by default. The cluster: partition `batch`,",
        "nodes `compute[1-2]`, users alice (2001) and bob.",
        "",
        f"Job ids of this capture: {json.dumps(jobs, sort_keys=True)}.",
        "",
        "| fixture | exit | command |",
        "| --- | --- | --- |",
    ]
    for name, entry in manifest.items():
        stdin = " (script on stdin)" if "stdin" in entry else ""
        command = entry["command"].replace("|", "\\|")
        lines.append(f"| `{name}` | {entry['exit_status']} | `{command}`{stdin} |")
    lines += [
        "",
        f"`{DIFFERENTIAL}`: the differential harness's rounds on the same cluster (`tests/contract/differential.py`:",
        "its jobs, then every command line of its vocabulary, with each answer; `gateway`: the iptables command",
        "lines of `differential_gateway.py` on a gateway, in order).",
        "`tests/integration/test_sim_differential_replay.py` asks the simulator the same and compares; a command",
        "line without a recorded answer fails there.",
        "",
        *NOTES,
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.txt"):
        stale.unlink()
    t0 = time.monotonic()
    with Testbed(TestbedSpec(compute=2, gateways=1, command=1, client=False)) as testbed:
        cap = Capture(testbed, out)
        jobs = capture_all(cap)
    (out / "manifest.json").write_text(json.dumps({"jobs": jobs, "commands": cap.manifest}, indent=2) + "\n")
    write_readme(out, cap.manifest, jobs)
    log.info("captured %d outputs in %.0f s into %s", len(cap.manifest), time.monotonic() - t0, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
