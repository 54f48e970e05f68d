"""The runner's settings tree: bwVisu's JSON config file, accepted as is, with environment overrides.

bwVisu spells its keys with hyphens (``bwvisu-home-prefix``); the models here use the same names with
underscores and accept both. The file is searched in bwVisu's order (:func:`config_search_paths`);
environment variables ``RUNNER_<FIELD>`` (nested with ``__``, e.g. ``RUNNER_API__PASSWORD``) override it.
Nothing is read at import time: :func:`load_settings` builds a :class:`Settings` and callers pass it on.

Strictness: an unknown key is refused at every level, with the closest known key suggested; numbers and
booleans in the file must be JSON numbers and booleans (``"port": "4242"`` is refused), while environment
values, which are text by nature, are converted. The environment rules are in :mod:`runner.configenv`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, Strict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from runner.configenv import ENV_PREFIX, environment_report, section_value_ignored
from runner.configkeys import describe_errors, hyphenated, underscore_keys
from runner.errors import ConfigError, InvalidSettings

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent
_HELPER_PATH = r"^/[A-Za-z0-9._+/-]+$"  # an absolute path, safe as one word of a remote command line

# Strict models refuse "4242" for a number; a path or a network is written as a string, so those stay lax.
FilePath = Annotated[Path, Strict(False)]
Network = Annotated[ipaddress.IPv4Network, Strict(False)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Section(BaseModel):
    # bwVisu's spelling (``internal-ip``) and ours (``internal_ip``) are both accepted, also inside JSON given
    # through an environment variable (e.g. RUNNER_GATEWAY_NODES), which the file's key rewriting never sees.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=hyphenated,
        validate_by_name=True,
        validate_by_alias=True,
    )


class CommandNode(_Section):
    """A node the runner reaches over SSH to run ``sbatch``/``squeue``/``scancel``/``sacct``."""

    ip: str = Field(description="address (or host name) the runner reaches the node's sshd at")
    user: str = Field(description="the runner's SSH account on the node")
    port: Port = Field(default=22, description="the node's SSH port")


class GatewayNode(_Section):
    """A node that forwards ``external-ip:port`` to compute nodes with iptables; reached over SSH at ``internal-ip``."""

    internal_ip: str = Field(description="address the runner reaches the gateway's sshd at (and compute nodes see)")
    external_ip: str = Field(description="public address users connect to; reported as a service's external-ip")
    user: str = Field(description="the runner's SSH account on the gateway")
    port: Port = Field(default=22, description="the gateway's SSH port")


class Endpoint(_Section):
    """An address and a port."""

    ip: str = Field(description="address or host name")
    port: Port = Field(description="TCP port")


class PortRange(_Section):
    """The block of gateway ports forwards are taken from (free on every gateway)."""

    min: Port = Field(default=50000, description="lowest external port a forward may use")
    max: Port = Field(default=60000, description="highest external port a forward may use")

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


def _readable_file(path: Path) -> Path:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ValueError(f"not a readable file: {path}")
    return path


ReadableFile = Annotated[Path, Strict(False), AfterValidator(_readable_file)]


class EtcdSettings(_Section):
    """How the runner authenticates to etcd (beyond bwVisu's ``etcd-servers``, which say only where it is).

    TLS is on when ``tls`` is true or any file is given; without ``ca-file`` the system's trusted roots
    check the members. Every member's certificate must name ``server-name``, which defaults to the address
    of the first entry of ``etcd-servers`` (gRPC checks one name for all members of a list). With ``user``
    and ``password`` the runner also logs in to etcd's own authentication; with a client certificate and
    etcd's ``--client-cert-auth``, etcd takes the certificate's common name as the user instead.
    """

    tls: bool = Field(default=False, description="talk TLS to etcd (implied by any of the files below)")
    ca_file: ReadableFile | None = Field(
        default=None, description="CA certificate(s) the etcd members' certificates are checked against"
    )
    cert_file: ReadableFile | None = Field(default=None, description="client certificate (with key-file)")
    key_file: ReadableFile | None = Field(default=None, description="client certificate's private key")
    server_name: str | None = Field(
        default=None, description="name every member's certificate must hold; default: the first etcd-servers ip"
    )
    user: str | None = Field(default=None, description="etcd user to log in as (with password)")
    password: SecretStr | None = Field(default=None, description="etcd user's password; never logged")

    @model_validator(mode="after")
    def _pairs(self) -> EtcdSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert-file and key-file must be given together")
        if bool(self.user) != bool(self.password and self.password.get_secret_value()):
            raise ValueError("user and password must be given together")
        return self

    @property
    def use_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None


class DebugSettings(_Section):
    """bwVisu's debugging switches; never in production."""

    keyholed_static_forwarding: Port | None = Field(
        default=None, description="always forward this one port; never in production"
    )


class ApiSettings(_Section):
    """The REST API the web frontend calls."""

    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - the frontend reaches the runner over the network
        description="address to listen on",
    )
    port: int = Field(default=4242, ge=0, le=65535, description="port to listen on (0: any free port)")
    user: str = Field(default="bwvisu-web", description="HTTP basic auth user of the web frontend")
    password: SecretStr = Field(
        default=SecretStr(""), description="HTTP basic auth password; required by serve, never logged"
    )
    tls_cert: FilePath | None = Field(default=None, description="certificate (chain) to serve HTTPS with")
    tls_key: FilePath | None = Field(default=None, description="private key of tls-cert")

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class KeyholeSettings(_Section):
    """TLS for the keyhole service: with a certificate, it serves HTTPS and the jobs' client accepts nothing else."""

    tls_cert: FilePath | None = Field(default=None, description="certificate the keyhole service serves HTTPS with")
    tls_key: FilePath | None = Field(default=None, description="private key of tls-cert")
    tls_ca: FilePath | None = Field(
        default=None,
        description="CA certificate embedded in every job's script, against which the client verifies the "
        "service; default: tls_cert itself (a self-signed certificate)",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> KeyholeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ValueError("tls_ca needs tls_cert and tls_key")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class SshSettings(_Section):
    """How the runner logs in to command and gateway nodes (its ``~/.ssh/config`` is never read)."""

    client_keys: list[FilePath] = Field(default_factory=list, description="private keys; empty = the user's defaults")
    known_hosts: FilePath | None = Field(
        default=None, description="known_hosts file; host keys are always checked (serve requires it)"
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for an SSH connection")
    command_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for one remote command")
    max_sessions: int = Field(default=8, ge=1, le=64, description="concurrent channels per connection")
    down_retry_after: float = Field(default=15.0, gt=0, description="seconds before a down node is tried again")


class WatcherSettings(_Section):
    """The job watcher: one ``squeue`` for all jobs per tick, run by the elected leader."""

    interval: float = Field(default=2.0, gt=0, description="seconds between squeue ticks")
    leader_ttl: int = Field(default=10, ge=2, description="leader lease TTL in seconds")


class _EnvironmentSource(EnvSettingsSource):
    """The process environment, minus values that cannot be meant for the runner (see :mod:`runner.configenv`)."""

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if section_value_ignored(field, value):
            value = None  # e.g. a CI's RUNNER_DEBUG=1; the section's RUNNER_DEBUG__* variables still apply
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class Settings(BaseSettings):
    """Everything the runner needs; built by :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        strict=True,
        populate_by_name=True,
    )

    bwvisu_home_prefix: str = Field(
        default="/home", description="absolute path under which each user's directory ($PREFIX/$USER) lies"
    )
    gateway_nodes: list[GatewayNode] = Field(default_factory=list, description="gateways forwards are set up on")
    command_nodes: list[CommandNode] = Field(
        default_factory=list, description="nodes Slurm commands run on; the next is tried when one is down"
    )
    keyholed_servers: list[Endpoint] = Field(
        default_factory=list,
        description="where jobs reach the keyhole service; the first is also where it listens",
    )
    keyholed_port_range: PortRange = Field(default=PortRange(), description="gateway ports forwards are taken from")
    keyholed_max_forwarders_per_job: int = Field(default=4, ge=1, le=64, description="most ports one job may ask for")
    etcd_servers: list[Endpoint] = Field(
        default_factory=lambda: [Endpoint(ip="127.0.0.1", port=2379)], description="etcd cluster members"
    )
    debug: DebugSettings = Field(default=DebugSettings(), description="debugging switches; never in production")
    forwarding_hostname_suffix: str = Field(
        default="", description="appended to a compute node's name to pick the network forwards target, e.g. -ib0"
    )

    # Beyond bwVisu's file: the runner's own settings and sections.
    compute_networks: list[Network] = Field(
        default_factory=list,
        description="CIDRs a forward may target; empty = any address Slurm's node names resolve to",
    )
    min_uid: int = Field(default=1000, ge=1, description="users below this uid (system accounts) are refused")
    max_uid: int = Field(
        default=59999, ge=1, description="users above this uid (packages' system accounts, e.g. slurm) are refused"
    )
    max_jobs_per_user: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="most unfinished jobs one user may have at once, across every runner process; unset: no limit",
    )
    idle_timeout_minutes: float | None = Field(
        default=None,
        gt=0,
        le=525600,
        description="cancel an available job whose forwards carried no traffic for this many minutes; unset: never",
    )
    idle_warning_minutes: float | None = Field(
        default=None,
        ge=0,
        le=525600,
        description="minutes before an idle cancellation the job's details carry an idle-warning; "
        "unset: 5, or half of idle-timeout-minutes when that is less",
    )
    command_node_helper: str | None = Field(
        default=None,
        pattern=_HELPER_PATH,
        description="a site's bwvisu-slurm-as: sudo -n HELPER USER CMD instead of bwVisu's sudo -n -u USER CMD",
    )
    gateway_helper: str | None = Field(
        default=None,
        pattern=_HELPER_PATH,
        description="a site's bwvisu-forward: sudo -n HELPER list|restore|ensure-chains instead of sudo iptables",
    )
    api: ApiSettings = Field(default=ApiSettings(), description="the REST API for the web frontend")
    keyhole: KeyholeSettings = Field(default=KeyholeSettings(), description="the keyhole service's TLS")
    ssh: SshSettings = Field(default=SshSettings(), description="SSH to command and gateway nodes")
    watcher: WatcherSettings = Field(default=WatcherSettings(), description="the job watcher")
    templates_dir: FilePath = Field(
        default=_PACKAGE_DIR / "templates", description="folder of job templates; default: the shipped ones"
    )
    etcd_prefix: str = Field(default="/bwvisu", description="key prefix of all the runner's records in etcd")
    etcd: EtcdSettings = Field(default=EtcdSettings(), description="authentication and TLS towards etcd")

    @model_validator(mode="after")
    def _idle_warning_before_timeout(self) -> Settings:
        timeout = self.idle_timeout_minutes
        if timeout is not None and self.idle_warning_minutes is not None and self.idle_warning_minutes >= timeout:
            raise ValueError(
                f"idle-warning-minutes ({self.idle_warning_minutes:g}) must be less than "
                f"idle-timeout-minutes ({timeout:g})"
            )
        return self

    @property
    def idle_warning(self) -> float:
        """Minutes of warning before an idle cancellation (see ``idle_warning_minutes``)."""
        if self.idle_warning_minutes is not None:
            return self.idle_warning_minutes
        return min(5.0, (self.idle_timeout_minutes or 0.0) / 2)

    @model_validator(mode="after")
    def _home_prefix_absolute(self) -> Settings:
        if not self.bwvisu_home_prefix.startswith("/"):
            raise ValueError(f"bwvisu-home-prefix must be an absolute path, got {self.bwvisu_home_prefix!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (passed as init values).
        return (_EnvironmentSource(settings_cls), init_settings)


def config_search_paths(install_dir: Path | None = None) -> list[Path]:
    """bwVisu's search order for ``config.json``."""
    base = install_dir or Path(os.environ.get("RUNNER_INSTALL_DIR", _PACKAGE_DIR.parent))
    return [
        base / "config.json",
        base.parent / "etc" / "config.json",
        Path("/etc/runner/config.json"),
        Path("/opt/runner/etc/config.json"),
    ]


def find_config_file(explicit: Path | None = None) -> Path | None:
    """The file to load: ``explicit`` (or ``$RUNNER_CONFIG``) if given, else the first that exists in search order."""
    chosen = explicit or (Path(os.environ["RUNNER_CONFIG"]) if os.environ.get("RUNNER_CONFIG") else None)
    if chosen is not None:
        if not chosen.is_file():
            raise ConfigError(f"config file {chosen} does not exist")
        return chosen
    return next((p for p in config_search_paths() if p.is_file()), None)


def settings_from_mapping(data: dict[str, Any]) -> Settings:
    """Validate a bwVisu-style mapping (hyphenated keys welcome), with the environment on top.

    Raises :class:`InvalidSettings`, whose problems each name a field (or an environment variable) and the
    reason, in bwVisu's spelling, never a value.
    """
    underscored, problems = underscore_keys(data)
    problems += environment_report(Settings).errors
    if problems:
        raise InvalidSettings(problems)
    try:
        return Settings(**underscored)
    except ValidationError as exc:
        raise InvalidSettings(describe_errors(exc, Settings)) from None
    except SettingsError as exc:
        # e.g. an environment variable holding malformed JSON; the message names the field, never the value.
        raise InvalidSettings([str(exc)]) from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return loaded


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load the config file (``path``, ``$RUNNER_CONFIG`` or the search order), apply ``overrides``, then the
    environment. Without any file, a :class:`ConfigError` lists the places searched."""
    found = find_config_file(path)
    if found is None:
        searched = ", ".join(str(p) for p in config_search_paths())
        raise ConfigError(f"no config file found; searched: {searched} (or give --config PATH or RUNNER_CONFIG)")
    data = {**read_config_file(found), **(overrides or {})}
    log_environment_warnings()
    return settings_from_mapping(data)


def log_environment_warnings() -> None:
    """One warning line per ``RUNNER_*`` variable that names no setting (with the closest setting's name)."""
    for warning in environment_report(Settings).warnings:
        log.warning("%s", warning)
