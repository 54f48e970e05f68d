"""The settings told to people and tools, generated from the settings model so they cannot drift from it.

:func:`config_schema` is the JSON Schema of the file (bwVisu's hyphenated keys); :func:`reference_page` is
``docs/configuration.md`` (every key: type, default, description, environment variable, then an annotated
example); :data:`EXAMPLE` is ``docs/config.example.json``. ``python -m runner config reference --write docs``
regenerates both files; a test fails when they are not current.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from runner.config import Settings
from runner.configenv import env_name
from runner.configkeys import hyphenated, is_section, model_of
from runner.errors import route_table

REFERENCE_FILE = "configuration.md"
EXAMPLE_FILE = "config.example.json"
REGENERATE = "python -m runner config reference --write docs"
ERRORS_FILE = "errors.md"
_PACKAGE_DIR = Path(__file__).resolve().parent

# A site's config.json in bwVisu's shape plus the runner's own sections. Files under /etc/runner are
# placeholders for the site's own; the secrets too (or leave them out and set RUNNER_API__PASSWORD, ...).
EXAMPLE: dict[str, Any] = {
    "bwvisu-home-prefix": "/home",
    "command-nodes": [
        {"ip": "10.0.0.2", "user": "bwvisu", "port": 22},
        {"ip": "10.0.0.3", "user": "bwvisu", "port": 22},
    ],
    "gateway-nodes": [
        {"internal-ip": "10.0.0.10", "external-ip": "193.196.1.10", "user": "bwvisu", "port": 22},
        {"internal-ip": "10.0.0.11", "external-ip": "193.196.1.11", "user": "bwvisu", "port": 22},
    ],
    "keyholed-servers": [{"ip": "10.0.0.5", "port": 4243}],
    "keyholed-port-range": {"min": 50000, "max": 60000},
    "keyholed-max-forwarders-per-job": 4,
    "etcd-servers": [{"ip": "10.0.0.6", "port": 2379}],
    "forwarding-hostname-suffix": "",
    "compute-networks": ["10.0.1.0/24"],
    "command-node-helper": "/usr/local/sbin/bwvisu-slurm-as",
    "gateway-helper": "/usr/local/sbin/bwvisu-forward",
    "api": {
        "host": "0.0.0.0",  # noqa: S104 - the frontend reaches the runner over the network
        "port": 4242,
        "user": "bwvisu-web",
        "password": "replace-with-a-long-random-password",
        "tls-cert": "/etc/runner/tls/api.crt",
        "tls-key": "/etc/runner/tls/api.key",
    },
    "keyhole": {"tls-cert": "/etc/runner/tls/keyhole.crt", "tls-key": "/etc/runner/tls/keyhole.key"},
    "ssh": {"client-keys": ["/etc/runner/ssh/id_ed25519"], "known-hosts": "/etc/runner/ssh/known_hosts"},
    "etcd": {"ca-file": "/etc/runner/etcd/ca.crt", "user": "runner", "password": "replace-with-etcd-password"},
    "etcd-prefix": "/bwvisu",
}


def _hyphenate_schema(node: Any) -> Any:
    """Top-level keys in bwVisu's spelling too (the sections' aliases already are)."""
    if isinstance(node, dict):
        out = {k: _hyphenate_schema(v) for k, v in node.items()}
        if isinstance(node.get("properties"), dict):
            out["properties"] = {hyphenated(k): _hyphenate_schema(v) for k, v in node["properties"].items()}
            if isinstance(node.get("required"), list):
                out["required"] = [hyphenated(k) for k in node["required"]]
        return out
    if isinstance(node, list):
        return [_hyphenate_schema(v) for v in node]
    return node


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, in bwVisu's spelling (the runner also accepts underscores)."""
    schema: dict[str, Any] = _hyphenate_schema(Settings.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --- the reference page ------------------------------------------------------------------------------

_SCALARS = {int: "integer", float: "number", bool: "boolean", str: "string", Path: "path", SecretStr: "secret string"}


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, FieldInfo):  # a constrained alias such as Port inside ``Port | None``
            parts += [_bounds(item.metadata).strip(" ()")]
        elif isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"<= {item.le}")
    return f" ({', '.join(parts)})" if parts else ""


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _type_name(inner, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        names = [_type_name(arg, metadata) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(names) + " or null"
    if origin is list:
        item = _type_name(get_args(annotation)[0], [])
        return "list of objects" if item == "object" else f"list of {item}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    name = _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))
    if name == "IPv4Network":
        name = "IPv4 network (CIDR)"
    return name + _bounds(metadata)


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path) and value.is_relative_to(_PACKAGE_DIR):
        return f"the shipped `runner/{value.relative_to(_PACKAGE_DIR)}`"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, list):
        value = [v.model_dump(mode="json", by_alias=True) if isinstance(v, BaseModel) else str(v) for v in value]
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _tables(model: type[BaseModel], key: str, env: tuple[str, ...] | str, title: str) -> list[str]:
    """The table of ``model``'s keys under heading ``title``, then one table per nested model.

    ``env`` is the field path variables are named after, or, for a list's items, the list's variable.
    """
    lines = [f"### `{title}`", ""]
    if model.__doc__ and model is not Settings:
        lines += [" ".join(model.__doc__.split("\n\n")[0].split()), ""]
    lines += ["| key | type | default | environment | description |", "| --- | --- | --- | --- | --- |"]
    nested: list[str] = []
    for name, field in model.model_fields.items():
        full = f"{key}{hyphenated(name)}"
        variable = f"`{env_name((*env, name))}`" if isinstance(env, tuple) else f"in `{env}` (JSON)"
        row = [f"`{full}`", _type_name(field.annotation, list(field.metadata)), _default(field), variable]
        lines.append("| " + " | ".join(_cell(c) for c in [*row, field.description or ""]) + " |")
        if (inner := model_of(field.annotation)) is None:
            continue
        if is_section(field.annotation) and isinstance(env, tuple):
            nested += _tables(inner, f"{full}.", (*env, name), full)
        else:
            holder = env if isinstance(env, str) else env_name((*env, name))
            nested += _tables(inner, f"{full}[].", holder, f"{full}[]")
    return [*lines, "", *nested]


def _annotated(value: Any, model: type[BaseModel] | None, indent: str) -> list[str]:
    """``value`` as JSON with a ``//`` comment (the field's description) above each key of ``model``."""
    if isinstance(value, dict):
        lines = ["{"]
        items = list(value.items())
        for i, (key, item) in enumerate(items):
            field = model.model_fields.get(key.replace("-", "_")) if model else None
            if field is not None and field.description:
                lines.append(f"{indent}  // {field.description}")
            inner = _annotated(item, model_of(field.annotation) if field else None, indent + "  ")
            comma = "," if i < len(items) - 1 else ""
            lines += [f"{indent}  {json.dumps(key)}: {inner[0]}", *inner[1:]]
            lines[-1] += comma
        return [*lines, f"{indent}}}"]
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        lines = ["["]
        for i, item in enumerate(value):
            # the descriptions once, on the first item
            inner = _annotated(item, model if i == 0 else None, indent + "  ")
            lines += [f"{indent}  {inner[0]}", *inner[1:]]
            lines[-1] += "," if i < len(value) - 1 else ""
        return [*lines, f"{indent}]"]
    return [json.dumps(value)]


_INTRO = f"""\
# Configuration reference

<!-- Generated from runner/config.py by `{REGENERATE}`; do not edit by hand. -->

`python -m runner serve` reads one JSON file: `--config PATH`, else `$RUNNER_CONFIG`, else the first of
`$INSTALL_DIR/config.json`, `$INSTALL_DIR/../etc/config.json`, `/etc/runner/config.json`,
`/opt/runner/etc/config.json` (bwVisu's order). Without one it stops with `no config file found; searched: ...`.

- **Spelling**: bwVisu's hyphenated keys (`gateway-nodes`) as shown here; `gateway_nodes` is accepted too
  (the same key in both spellings is refused).
- **Strict**: an unknown key is refused at every level, naming the closest known key
  (`gateway-node: unknown key (did you mean gateway-nodes?)`); numbers and booleans must be JSON numbers and
  booleans (`"port": "4242"` is refused, naming the field).
- **Environment**: the variable in the *environment* column overrides the file (`RUNNER_API__PASSWORD`, nested
  keys joined with `__`; lists and whole sections as JSON, e.g. `RUNNER_GATEWAY_NODES='[...]'`). Environment
  values are text, so numbers there are converted. A `RUNNER_*` variable that names no setting (CI systems set
  `RUNNER_OS`, `RUNNER_TEMP`, `RUNNER_DEBUG=1`) is ignored with a warning suggesting the closest setting's
  variable, as is a section's variable that holds no JSON object; an unknown key under a known section
  (`RUNNER_API__PASWORD`) is refused. `RUNNER_CONFIG` and `RUNNER_INSTALL_DIR` choose the file.
- **Preflight**: `serve` also checks, before connecting anywhere, that command and gateway nodes are
  configured, the SSH keys and `ssh.known-hosts` can be read, `api.password` is set and the TLS files given can
  be read; each problem is one line naming the field, and the exit status is 2.
- **Tools**: `python -m runner config check PATH` validates and preflights a file (a short summary and exit 0,
  or the problems and exit 2); `python -m runner config schema` prints the JSON Schema.

## Keys
"""


def reference_page() -> str:
    """``docs/configuration.md``."""
    example = "\n".join(_annotated(EXAMPLE, Settings, ""))
    lines = [
        _INTRO,
        *_tables(Settings, "", (), "top level"),
        "## Annotated example",
        "",
        f"The runner reads plain JSON: [`{EXAMPLE_FILE}`]({EXAMPLE_FILE}) is this example without the comments.",
        "Its files under `/etc/runner` and its passwords stand for the site's own.",
        "",
        "```jsonc",
        example,
        "```",
        "",
    ]
    return "\n".join(lines)


def example_file() -> str:
    """``docs/config.example.json``."""
    return json.dumps(EXAMPLE, indent=2) + "\n"


def write_docs(folder: Path) -> list[Path]:
    """Write the reference page, the example and the page of each route's errors into ``folder``; the paths
    written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / REFERENCE_FILE, folder / EXAMPLE_FILE, folder / ERRORS_FILE]
    written[0].write_text(reference_page())
    written[1].write_text(example_file())
    written[2].write_text(route_table())
    return written
