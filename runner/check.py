"""``python -m runner check``: is the configured cluster ready for the runner? A table and an exit status.

Each check runs against the real systems with the runner's own command lines and settings, bounded in time,
all nodes at once, so one node that hangs or fails never hides the others' results:

* ``ssh``: every command node and gateway answers over SSH, host keys checked as the runner checks them.
* ``sudo-as-user`` / ``sudo-as-root``: on command nodes, ``scancel`` of a job id Slurm never hands out runs as
  the ``--as-user`` user (bwVisu's ``sudo -n -u USER``, or the site's ``command-node-helper``), and the same as
  root is refused (security model point 3: ordinary users only).
* ``gateway-list`` / ``raw-iptables``: on gateways, listing the runner's chain works (``sudo -n iptables`` or
  ``gateway-helper``); with the helper configured, raw ``sudo -n iptables`` is refused.
* ``etcd``: connect (TLS and user as configured), write, read back and delete a key under ``etcd-prefix``.
* ``keyhole``: the keyhole endpoint accepts a TCP connection, probed with ``nc -z`` *from each command node*:
  jobs reach it from compute nodes, which share the command nodes' network at most sites; a firewall between
  compute nodes and the keyhole is not seen by this check (the trade-off for not submitting a job).
* ``idle-counters`` (only with ``idle-timeout-minutes``; else skip): on gateways, the accounting chain's counters
  are read with the idle sweep's own command line (:meth:`GatewayAccess.counters_argv`) and parse. A chain not
  created yet is ok when iptables itself answered (as root) that it is missing: the rights that read it also create
  it, and the runner creates it at start. With ``gateway-helper``, a helper that answers ``counters`` with its usage
  refusal (exit 64) is an older ``bwvisu-forward``: FAIL, since the runner then forwards without counting and
  cancels no idle job.
* ``ephemeral-ports``: on gateways, ``cat /proc/sys/net/ipv4/ip_local_port_range`` (no sudo; bwvisu_site gives the
  account no forced command or restricted shell, it already runs ``nc``/``sh`` probes) must not overlap
  ``keyholed-port-range``: an outgoing connection of the gateway could hold a port a forward is given later, and a
  DNAT rule for that port shadows the connection's replies. Compute nodes matter as well (the job listens on the
  same number, internal port = external port, see :mod:`runner.keyhole.ports`; the keyhole's probe only sees a
  listener, not an outgoing connection holding the port, so the job's bind can fail), but the runner has no SSH
  to compute nodes and this check submits no job: set the same range there (containers/testbed.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runner.config import Settings, load_settings
from runner.configcli import add_operator_command, error_lines
from runner.errors import CheckFailed, ConfigError, TransportError
from runner.etcd import etcd_client
from runner.gateway.access import SUDO_IPTABLES, gateway_access
from runner.gateway.iptables import ACCOUNTING_CHAIN, DNAT_CHAIN, list_command, parse_counters
from runner.slurm import cli as slurm
from runner.ssh import CommandOutput, CommandRunner, SshNode

EXIT_FAILED = 1
EXIT_CONFIG = 2
# Above Slurm's default MaxJobId (67043328): never a real job's id, so scancel of it cancels nothing.
UNUSED_JOB_ID = "67108862"
NO_CHAIN = ("No chain/target/match by that name", "is incompatible, use 'nft' tool")
"""iptables' answers (as root) for a chain that does not exist: legacy's, and iptables-nft 1.8.9's to ``-S CHAIN``
(seen on the testbed's gateways by the differential harness)."""
HELPER_USAGE_STATUS = 64
"""bwvisu-forward's exit status for a request it does not know (``EXIT_USAGE`` in bwvisu_site/gateway)."""
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


@dataclass(frozen=True)
class CheckResult:
    """One row of the table: ``ok`` is None when the check was skipped."""

    check: str
    node: str
    ok: bool | None
    detail: str

    @property
    def result(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


def add_check_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check`` to the runner's command line."""
    check = add_operator_command(
        subparsers,
        "check",
        help="check SSH, sudo rights, etcd and the keyhole endpoint of the configured cluster (exit 1 on failure)",
        description=__doc__,
    )
    check.add_argument(
        "--as-user",
        metavar="USER",
        default=None,
        help="an ordinary cluster user to run Slurm commands as (without it, that check is skipped)",
    )
    check.add_argument("--timeout", type=float, default=20.0, help="bound on each check, seconds (default 20)")


def _say(*lines: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write("".join(f"{line}\n" for line in lines))
    stream.flush()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _said(out: CommandOutput) -> str:
    return f"exit {out.exit_status}: {_first_line(out.stderr) or _first_line(out.stdout) or '(no output)'}"


async def _bounded(check: str, node: str, timeout: float, probe: Callable[[], Awaitable[str]]) -> CheckResult:
    try:
        async with asyncio.timeout(timeout):
            return CheckResult(check, node, True, await probe())
    except TimeoutError:
        return CheckResult(check, node, False, f"no answer within {timeout:g}s")
    except CheckFailed as exc:
        return CheckResult(check, node, False, str(exc))
    except TransportError as exc:
        return CheckResult(check, node, False, exc.reason)
    except Exception as exc:  # any failure is this row's result, never the others'
        return CheckResult(check, node, False, f"{type(exc).__name__}: {exc}")


async def _ssh(node: SshNode) -> str:
    out = await node.run(["true"])
    if not out.ok:
        raise CheckFailed(_said(out))
    return "connected, host key verified"


async def _as_user(node: SshNode, user: str, helper: str | None) -> str:
    out = await node.run(slurm.scancel_argv(user, UNUSED_JOB_ID, helper))
    if out.ok or slurm.scancel_unknown_job(out.stderr):
        return f"scancel ran as {user}" + (f" via {helper}" if helper else "")
    raise CheckFailed(f"scancel as {user} refused: {_said(out)}")


async def _as_root_refused(node: SshNode, helper: str | None) -> str:
    out = await node.run(slurm.scancel_argv("root", UNUSED_JOB_ID, helper))
    if out.ok or slurm.scancel_unknown_job(out.stderr):
        raise CheckFailed("scancel ran as root: the account may do more than the runner needs")
    return f"refused ({_first_line(out.stderr) or f'exit {out.exit_status}'})"


async def _keyhole(node: SshNode, host: str, port: int, timeout: float) -> str:
    wait = max(1, int(timeout / 2))
    out = await node.run(["nc", "-z", "-w", str(wait), host, str(port)])
    if not out.ok:
        raise CheckFailed(f"{host}:{port} not reachable: {_said(out)}")
    return f"{host}:{port} accepts connections"


async def _gateway_list(node: SshNode, helper: str | None) -> str:
    out = await node.run(gateway_access(helper).list_argv(DNAT_CHAIN))
    if not out.ok and any(text in out.stderr for text in NO_CHAIN):
        # iptables ran as root and answered: the rights are there, the runner creates its chains at start
        return f"{DNAT_CHAIN} not created yet (the runner creates it at start); listing allowed"
    if not out.ok:
        raise CheckFailed(f"listing {DNAT_CHAIN} failed: {_said(out)}")
    return f"{DNAT_CHAIN} listed" + (f" via {helper}" if helper else " with sudo iptables")


async def _raw_iptables_refused(node: SshNode) -> str:
    out = await node.run(list_command(DNAT_CHAIN, iptables=SUDO_IPTABLES))
    if out.ok:
        raise CheckFailed("raw sudo iptables allowed although gateway-helper is configured")
    return f"refused ({_first_line(out.stderr) or f'exit {out.exit_status}'})"


async def _idle_counters(node: CommandRunner, helper: str | None) -> str:
    out = await node.run(gateway_access(helper).counters_argv())
    if helper is not None and out.exit_status == HELPER_USAGE_STATUS:
        raise CheckFailed(
            f"{helper} does not know 'counters' (an older bwvisu-forward: {_said(out)}); the runner would forward "
            "without counting and cancel no idle job: install bwvisu_site/gateway/bwvisu_forward.py of this runner"
        )
    if not out.ok and any(text in out.stderr for text in NO_CHAIN):
        return f"{ACCOUNTING_CHAIN} not created yet (the runner creates it at start); reading counters allowed"
    if not out.ok:
        raise CheckFailed(f"reading counters of {ACCOUNTING_CHAIN} failed: {_said(out)}")
    try:
        counted = parse_counters(out.stdout)
    except ValueError as exc:
        raise CheckFailed(f"counters of {ACCOUNTING_CHAIN} unreadable: {exc}") from None
    return f"{ACCOUNTING_CHAIN} read: {len(counted)} counting rules" + (f" via {helper}" if helper else "")


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``ip_local_port_range``'s two numbers (low, high); None when the text is not that."""
    words = text.split()
    if len(words) != 2 or not all(w.isdigit() for w in words):
        return None
    low, high = int(words[0]), int(words[1])
    return (low, high) if 1 <= low <= high <= 65535 else None


async def _ephemeral_ports(node: CommandRunner, low: int, high: int) -> str:
    out = await node.run(["cat", EPHEMERAL_RANGE_FILE])
    if not out.ok:
        raise CheckFailed(f"cannot read {EPHEMERAL_RANGE_FILE}: {_said(out)}")
    found = parse_port_range(out.stdout)
    if found is None:
        raise CheckFailed(f"{EPHEMERAL_RANGE_FILE} unreadable: {out.stdout.strip()[:200]!r}")
    first, last = found
    if first <= high and low <= last:
        if first < low:
            below = f"{first} {low - 1}"
        elif last > high:
            below = f"{high + 1} {last}"
        elif high < 65535:
            below = f"{high + 1} 65535"
        else:
            below = f"1024 {low - 1}"
        raise CheckFailed(
            f"ephemeral ports {first}-{last} overlap keyholed-port-range {low}-{high}: outgoing connections may take "
            f'a forward\'s port; set sysctl net.ipv4.ip_local_port_range="{below}" (persist it in /etc/sysctl.d) '
            "or choose a keyholed-port-range outside it"
        )
    return f"ephemeral ports {first}-{last} outside keyholed-port-range {low}-{high}"


async def _etcd(settings: Settings, timeout: float) -> str:
    client = etcd_client(settings.etcd_servers, settings.etcd, timeout=max(1, int(timeout)))
    key = f"{settings.etcd_prefix}/check/{uuid.uuid4().hex}".encode()
    await client.connect()
    try:
        await client.put(key, b"runner check")
        got = await client.get(key)
        if got is None or got.value != b"runner check":
            raise CheckFailed(f"wrote {key.decode()} but read back {got.value if got else None!r}")
        await client.delete(key)
    finally:
        await client.close()
    return f"read and wrote under {settings.etcd_prefix}"


def _etcd_name(settings: Settings) -> str:
    return ",".join(f"{e.ip}:{e.port}" for e in settings.etcd_servers)


async def run_checks(settings: Settings, as_user: str | None, timeout: float) -> list[CheckResult]:
    """Every check, concurrently; rows in a stable order (command nodes, gateways, etcd)."""
    ssh = settings.ssh
    commands = [SshNode(n.ip, n.port, n.user, ssh) for n in settings.command_nodes]
    gateways = [SshNode(g.internal_ip, g.port, g.user, ssh) for g in settings.gateway_nodes]
    cn_helper, gw_helper = settings.command_node_helper, settings.gateway_helper

    async def command_node(node: SshNode) -> list[CheckResult]:
        rows = [await _bounded("ssh", node.name, timeout, lambda: _ssh(node))]
        if as_user is None:
            rows.append(CheckResult("sudo-as-user", node.name, None, "give --as-user USER to check"))
        else:
            rows.append(await _bounded("sudo-as-user", node.name, timeout, lambda: _as_user(node, as_user, cn_helper)))
        rows.append(await _bounded("sudo-as-root", node.name, timeout, lambda: _as_root_refused(node, cn_helper)))
        for endpoint in settings.keyholed_servers[:1]:
            probe = functools.partial(_keyhole, node, endpoint.ip, endpoint.port, timeout)
            rows.append(await _bounded("keyhole", node.name, timeout, probe))
        return rows

    async def gateway(node: SshNode) -> list[CheckResult]:
        rows = [await _bounded("ssh", node.name, timeout, lambda: _ssh(node))]
        rows.append(await _bounded("gateway-list", node.name, timeout, lambda: _gateway_list(node, gw_helper)))
        if gw_helper is not None:
            rows.append(await _bounded("raw-iptables", node.name, timeout, lambda: _raw_iptables_refused(node)))
        if settings.idle_timeout_minutes is None:
            rows.append(CheckResult("idle-counters", node.name, None, "idle-timeout-minutes not set"))
        else:
            rows.append(await _bounded("idle-counters", node.name, timeout, lambda: _idle_counters(node, gw_helper)))
        span = settings.keyholed_port_range
        ports = functools.partial(_ephemeral_ports, node, span.min, span.max)
        rows.append(await _bounded("ephemeral-ports", node.name, timeout, ports))
        return rows

    async def etcd() -> list[CheckResult]:
        return [await _bounded("etcd", _etcd_name(settings), timeout, lambda: _etcd(settings, timeout))]

    try:
        groups = await asyncio.gather(*(command_node(n) for n in commands), *(gateway(g) for g in gateways), etcd())
    finally:
        for node in (*commands, *gateways):
            await node.close()
    rows = [row for group in groups for row in group]
    if not commands:
        rows.insert(0, CheckResult("ssh", "(command nodes)", False, "no command-nodes configured"))
    if not gateways:
        rows.insert(0, CheckResult("ssh", "(gateways)", False, "no gateway-nodes configured"))
    return rows


def format_table(rows: list[CheckResult]) -> str:
    """Aligned columns: check, node, result, detail."""
    table = [("CHECK", "NODE", "RESULT", "DETAIL"), *((r.check, r.node, r.result, r.detail) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip() for row in table
    )


def run_check_command(args: argparse.Namespace) -> int:
    """``check``: print the table; 0 when every check passed, 1 on any failure, 2 on a bad configuration."""
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        for line in error_lines(exc):
            _say(f"error: {line}", err=True)
        return EXIT_CONFIG
    rows = asyncio.run(run_checks(settings, args.as_user, args.timeout))
    _say(format_table(rows))
    failed = [r for r in rows if r.ok is False]
    if failed:
        _say(f"{len(failed)} of {len(rows)} checks failed", err=True)
        return EXIT_FAILED
    return 0
