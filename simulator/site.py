"""The site mode: a simulated cluster set up as ``bwvisu_site`` tells a site to set up a real one.

Command nodes and gateways get the shipped sudoers rules (for the cluster's service user, naming the configured
install paths) in place of blanket sudo, and the two helpers at those paths. The helpers answer with the shipped
modules' own code: the same command lines, the same checks, the same refusal texts and exit statuses. Below the
checks they do what the real ones do: ``bwvisu-slurm-as`` runs the Slurm command's handler as the user (with the
same stdin), ``bwvisu-forward`` runs the node's simulated ``iptables`` / ``iptables-restore --noflush``, edits
and chain set-up one at a time per gateway (the real helper's ``flock``). Run without sudo, both refuse as the real
ones do: their configuration belongs to root, not to the caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import bwvisu_site
from bwvisu_site.command import bwvisu_slurm_as as slurm_as
from bwvisu_site.gateway import bwvisu_forward as forward
from simulator.commands import CommandContext, CommandResult, Handler
from simulator.config import ClusterConfig, Role, SiteConfig
from simulator.dispatch import StdinPredicate
from simulator.gateway import GatewayService
from simulator.shell import handlers_of
from simulator.sudo import Sudoers
from simulator.users import UserDB

SITE_FILES = Path(bwvisu_site.__file__).parent
SHIPPED_PATHS = {"command": "/usr/local/sbin/bwvisu-slurm-as", "gateway": "/usr/local/sbin/bwvisu-forward"}
_ROOT_DIR_MODE = 0o40755
SLURM_AS_POLICY, FORWARD_LIMITS, FORWARD_LOCK = "site-slurm-as", "site-forward", "site-forward-lock"


def installed(site: SiteConfig) -> dict[str, str]:
    """Where sudo finds the helpers by name (they sit on its ``secure_path``)."""
    return {"bwvisu-slurm-as": site.slurm_as_path, "bwvisu-forward": site.forward_path}


def sudo_policy(roles: set[Role], cfg: ClusterConfig) -> Sudoers:
    """The shipped sudoers files of the node's kinds, for ``cfg``'s service user and install paths."""
    assert cfg.site is not None
    paths = {SHIPPED_PATHS["command"]: cfg.site.slurm_as_path, SHIPPED_PATHS["gateway"]: cfg.site.forward_path}
    policy = Sudoers(())
    for kind, role in (("command", Role.COMMAND), ("gateway", Role.GATEWAY)):
        if role in roles:
            text = (SITE_FILES / kind / "sudoers").read_text()
            policy += Sudoers.parse(text, user=cfg.service_user, paths=paths)
    return policy


def slurm_as_policy(cfg: ClusterConfig) -> slurm_as.Policy:
    """The helper's configuration, through the shipped file format."""
    assert cfg.site is not None
    policy = slurm_as.Policy(
        cfg.site.min_uid, frozenset({cfg.service_user}), tuple(cfg.site.slurm_commands), max_uid=cfg.site.max_uid
    )
    return slurm_as.parse_config(slurm_as.render_config(policy))


def forward_limits(cfg: ClusterConfig, compute_addresses: list[str]) -> forward.Limits:
    """The gateway helper's configuration, through the shipped file format (so the same checks apply)."""
    assert cfg.site is not None
    networks = cfg.site.compute_networks or [f"{address}/32" for address in compute_addresses]
    text = (
        f"[forward]\nports = {cfg.site.port_min}-{cfg.site.port_max}\ncompute-networks = {' '.join(networks)}\n"
        "iptables = /usr/sbin/iptables\niptables-restore = /usr/sbin/iptables-restore\n"
    )
    return forward.parse_config(text)


def services(roles: set[Role], cfg: ClusterConfig, compute_addresses: list[str]) -> dict[str, object]:
    """Per-node state of the helpers: their configurations and the gateway helper's lock."""
    found: dict[str, object] = {}
    if Role.COMMAND in roles:
        found[SLURM_AS_POLICY] = slurm_as_policy(cfg)
    if Role.GATEWAY in roles:
        found[FORWARD_LIMITS] = forward_limits(cfg, compute_addresses)
        found[FORWARD_LOCK] = asyncio.Lock()
    return found


def handlers(roles: set[Role], site: SiteConfig) -> dict[str, Handler]:
    found: dict[str, Handler] = {}
    if Role.COMMAND in roles:
        found[site.slurm_as_path] = slurm_as_command
    if Role.GATEWAY in roles:
        found[site.forward_path] = forward_command
    return found


def stdin_readers(site: SiteConfig, readers: dict[str, StdinPredicate]) -> dict[str, StdinPredicate]:
    """``bwvisu-slurm-as`` hands stdin to its command; ``bwvisu-forward restore`` reads it."""

    def slurm_as_reads(argv: list[str]) -> bool:
        inner = readers.get(argv[2]) if len(argv) > 2 else None
        return inner is not None and inner(argv[2:])

    return {site.slurm_as_path: slurm_as_reads, site.forward_path: lambda argv: argv[1:] == ["restore"]}


def _refused(exc: slurm_as.Refusal | forward.Refusal) -> CommandResult:
    return CommandResult(exc.status, "", exc.text())


def _euid(ctx: CommandContext) -> int:
    users: UserDB = ctx.services["users"]
    account = users.get(ctx.user)
    return account.uid if account is not None else -1


def _lookup(users: UserDB) -> slurm_as.Lookup:
    def lookup(name: str) -> slurm_as.Account | None:
        found = users.get(name)
        return None if found is None else slurm_as.Account(found.name, found.uid, found.gid, found.home, found.shell)

    return lookup


async def slurm_as_command(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """``bwvisu-slurm-as USER COMMAND ARGS...``: the shipped checks, then the command's handler as USER."""
    policy: slurm_as.Policy = ctx.services[SLURM_AS_POLICY]
    try:
        for item in (slurm_as.CONFIG_PATH.parent, slurm_as.CONFIG_PATH):  # root's files, as installed
            slurm_as.check_owner(item, 0, _ROOT_DIR_MODE, _euid(ctx))
        run = slurm_as.check_request(argv[1:], policy, _lookup(ctx.services["users"]), ctx.sudo_user)
    except slurm_as.Refusal as exc:
        return _refused(exc)
    handler = handlers_of(ctx).get(run.command)
    if handler is None:
        return CommandResult(
            126, "", f"{slurm_as.PROG}: cannot run: [Errno 2] No such file or directory: {run.program!r}\n"
        )
    return await handler(dataclasses.replace(ctx, user=run.account.name, sudo_user=None), list(run.argv), stdin)


async def forward_command(ctx: CommandContext, argv: list[str], stdin: bytes) -> CommandResult:
    """``bwvisu-forward ensure-chains | list CHAIN | restore | ensure-accounting | counters CHAIN``: the shipped
    checks, then the node's iptables."""
    limits: forward.Limits = ctx.services[FORWARD_LIMITS]
    service: GatewayService = ctx.services["gateway"]
    try:
        request = forward.parse_args(argv[1:])
        for item in (forward.CONFIG_PATH.parent, forward.CONFIG_PATH):
            forward.check_owner(item, 0, _ROOT_DIR_MODE, _euid(ctx))
        forward.check_request(request, limits)
        if request.action == "list":
            assert request.chain is not None
            return await service.iptables(forward.list_argv(request.chain, limits)[1:])
        if request.action == "counters":
            return await service.iptables(forward.counters_argv(limits)[1:])
        text = forward.validate_restore(stdin, limits) if request.action == "restore" else None
    except forward.Refusal as exc:
        return _refused(exc)
    async with ctx.services[FORWARD_LOCK]:
        if text is None:
            accounting = request.action == "ensure-accounting"
            text = await _ensure_input(service, limits, accounting)
            if text is None:
                return CommandResult(0)
        return await service.iptables_restore(forward.restore_argv(limits)[1:], text.encode())


async def _ensure_input(service: GatewayService, limits: forward.Limits, accounting: bool) -> str | None:
    """Drive the shipped helper's chain set-up steps (nat chains, or the accounting chain) against the simulated
    iptables."""
    steps = forward.accounting_steps(limits) if accounting else forward.ensure_steps(limits)
    try:
        argv = next(steps)
        while True:
            argv = steps.send((await service.iptables(argv[1:])).exit_status)
    except StopIteration as done:
        setup: str | None = done.value
        return setup
