"""The runner's settings tree: bwVisu's JSON config file, accepted as is, with environment overrides.

bwVisu spells its keys with hyphens (``bwvisu-home-prefix``); the models here use the same names with
underscores and accept both. The file is searched in bwVisu's order (:func:`config_search_paths`);
environment variables ``RUNNER_<FIELD>`` (nested with ``__``, e.g. ``RUNNER_API__PASSWORD``) override it.
Nothing is read at import time: :func:`load_settings` builds a :class:`Settings` and callers pass it on.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from runner.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent
_HELPER_PATH = r"^/[A-Za-z0-9._+/-]+$"  # an absolute path, safe as one word of a remote command line


def _hyphenated(field: str) -> str:
    return field.replace("_", "-")


class _Section(BaseModel):
    # bwVisu's spelling (``internal-ip``) and ours (``internal_ip``) are both accepted, also inside JSON given
    # through an environment variable (e.g. RUNNER_GATEWAY_NODES), which the file's key rewriting never sees.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=_hyphenated, validate_by_name=True, validate_by_alias=True
    )


class CommandNode(_Section):
    """A node the runner reaches over SSH to run ``sbatch``/``squeue``/``scancel``/``sacct``."""

    ip: str
    user: str
    port: int = Field(default=22, ge=1, le=65535)


class GatewayNode(_Section):
    """A node that forwards ``external-ip:port`` to compute nodes with iptables; reached over SSH at ``internal-ip``."""

    internal_ip: str
    external_ip: str
    user: str
    port: int = Field(default=22, ge=1, le=65535)


class Endpoint(_Section):
    ip: str
    port: int = Field(ge=1, le=65535)


class PortRange(_Section):
    min: int = Field(default=50000, ge=1, le=65535)
    max: int = Field(default=60000, ge=1, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


def _readable_file(path: Path) -> Path:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ValueError(f"not a readable file: {path}")
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]


class EtcdSettings(_Section):
    """How the runner authenticates to etcd (beyond bwVisu's ``etcd-servers``, which say only where it is).

    TLS is on when ``tls`` is true or any file is given; without ``ca-file`` the system's trusted roots
    check the members. Every member's certificate must name ``server-name``, which defaults to the address
    of the first entry of ``etcd-servers`` (gRPC checks one name for all members of a list). With ``user``
    and ``password`` the runner also logs in to etcd's own authentication; with a client certificate and
    etcd's ``--client-cert-auth``, etcd takes the certificate's common name as the user instead.
    """

    tls: bool = False
    ca_file: ReadableFile | None = None
    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = None
    server_name: str | None = None
    user: str | None = None
    password: SecretStr | None = None

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
    keyholed_static_forwarding: int | None = Field(
        default=None, ge=1, le=65535, description="always forward this one port; never in production"
    )


class ApiSettings(_Section):
    host: str = "0.0.0.0"  # noqa: S104 - the frontend reaches the runner over the network
    port: int = Field(default=4242, ge=0, le=65535)
    user: str = "bwvisu-web"
    password: SecretStr = SecretStr("")
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


class KeyholeSettings(_Section):
    """TLS for the keyhole service: with a certificate, it serves HTTPS and the jobs' client accepts nothing else."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = Field(
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
    client_keys: list[Path] = Field(default_factory=list, description="private keys; empty = the user's defaults")
    known_hosts: Path | None = Field(default=None, description="known_hosts file; host keys are always checked")
    connect_timeout: float = Field(default=10.0, gt=0)
    command_timeout: float = Field(default=30.0, gt=0)
    max_sessions: int = Field(default=8, ge=1, le=64, description="concurrent channels per connection")
    down_retry_after: float = Field(default=15.0, gt=0, description="seconds before a down node is tried again")


class WatcherSettings(_Section):
    interval: float = Field(default=2.0, gt=0, description="seconds between squeue ticks")
    leader_ttl: int = Field(default=10, ge=2, description="leader lease TTL in seconds")


class Settings(BaseSettings):
    """Everything the runner needs; built by :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="RUNNER_", env_nested_delimiter="__", extra="ignore", frozen=True, populate_by_name=True
    )

    bwvisu_home_prefix: str = "/home"
    gateway_nodes: list[GatewayNode] = Field(default_factory=list)
    command_nodes: list[CommandNode] = Field(default_factory=list)
    keyholed_servers: list[Endpoint] = Field(default_factory=list)
    keyholed_port_range: PortRange = PortRange()
    keyholed_max_forwarders_per_job: int = Field(default=4, ge=1, le=64)
    etcd_servers: list[Endpoint] = Field(default_factory=lambda: [Endpoint(ip="127.0.0.1", port=2379)])
    debug: DebugSettings = DebugSettings()
    forwarding_hostname_suffix: str = ""

    # Beyond bwVisu's file: the runner's own settings and sections.
    compute_networks: list[ipaddress.IPv4Network] = Field(
        default_factory=list,
        description="CIDRs a forward may target; empty = any address Slurm's node names resolve to",
    )
    min_uid: int = Field(default=1000, ge=1, description="users below this uid (system accounts) are refused")
    max_uid: int = Field(
        default=59999, ge=1, description="users above this uid (packages' system accounts, e.g. slurm) are refused"
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
    api: ApiSettings = ApiSettings()
    keyhole: KeyholeSettings = KeyholeSettings()
    ssh: SshSettings = SshSettings()
    watcher: WatcherSettings = WatcherSettings()
    templates_dir: Path = _PACKAGE_DIR / "templates"
    etcd_prefix: str = "/bwvisu"
    etcd: EtcdSettings = EtcdSettings()

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
        return (env_settings, init_settings)


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


def _underscore_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).replace("-", "_"): _underscore_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_underscore_keys(v) for v in value]
    return value


def settings_from_mapping(data: dict[str, Any]) -> Settings:
    """Validate a bwVisu-style mapping (hyphenated keys welcome); errors name the field and the reason."""
    try:
        return Settings(**_underscore_keys(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p).replace('_', '-') for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        # e.g. an environment variable holding malformed JSON; the message names the field, never the value.
        raise ConfigError(f"invalid configuration: {exc}") from None


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Load the config file (search order, or ``path``), apply ``overrides``, then the environment."""
    found = find_config_file(path)
    data: dict[str, Any] = {}
    if found is not None:
        try:
            loaded = json.loads(found.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config file {found}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {found} must hold a JSON object")
        data.update(loaded)
    data.update(overrides or {})
    return settings_from_mapping(data)
