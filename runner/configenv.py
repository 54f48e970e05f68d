"""What the environment may say to the runner: ``RUNNER_<FIELD>`` and ``RUNNER_<SECTION>__<KEY>`` override the file.

The ``RUNNER_`` prefix is not ours alone: CI systems set ``RUNNER_OS``, ``RUNNER_TEMP`` or ``RUNNER_DEBUG=1``
(GitHub Actions), and unrelated environment must never stop the runner from starting. So:

- a variable that names no setting (``RUNNER_TEMP``, or ``RUNNER_API_PASSWORD`` for ``RUNNER_API__PASSWORD``)
  is ignored with a warning, which suggests the closest setting's variable;
- a section's variable whose value is not a JSON object (``RUNNER_DEBUG=1``) is ignored with a warning;
- an unknown key under a known section (``RUNNER_API__PASWORD``) can only be meant for the runner, and is
  refused like an unknown key in the file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runner.configkeys import is_section, model_of

ENV_PREFIX = "RUNNER_"
NESTED = "__"
# Read by the config file search, not settings.
SEARCH_VARIABLES = ("RUNNER_CONFIG", "RUNNER_INSTALL_DIR")


@dataclass
class EnvironmentReport:
    """The ``RUNNER_*`` variables sorted: applied as settings, refused (errors), ignored (warnings)."""

    used: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def env_name(path: tuple[str, ...]) -> str:
    """The variable that sets the field at ``path`` (field names): ``RUNNER_API__PORT``."""
    return ENV_PREFIX + NESTED.join(part.upper() for part in path)


def setting_variables(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Every variable that sets a field: each top-level field, and each key of a section (not of list items)."""
    variables: dict[str, FieldInfo] = {}

    def visit(holder: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in holder.model_fields.items():
            variables[env_name((*prefix, name))] = info
            if is_section(info.annotation) and (inner := model_of(info.annotation)) is not None:
                visit(inner, (*prefix, name))

    visit(model, ())
    return variables


def section_value_ignored(info: FieldInfo, value: Any) -> bool:
    """A section's variable holding anything but a JSON object (``RUNNER_DEBUG=1``) cannot be meant for us."""
    return is_section(info.annotation) and isinstance(value, str) and not value.lstrip().startswith("{")


def _closest(name: str, known: list[str]) -> str:
    short = [k.removeprefix(ENV_PREFIX) for k in known]
    close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), short, n=1, cutoff=0.75)
    return f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""


def environment_report(model: type[BaseModel], environ: Mapping[str, str] | None = None) -> EnvironmentReport:
    """Sort the ``RUNNER_*`` variables of ``environ`` (default: the process's) as the settings source reads them."""
    variables = setting_variables(model)
    known = sorted(variables)
    report = EnvironmentReport()
    for name, value in sorted((os.environ if environ is None else environ).items()):
        upper = name.upper()  # the settings source matches names case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in SEARCH_VARIABLES:
            continue
        info = variables.get(upper)
        if info is not None and section_value_ignored(info, value):
            report.warnings.append(
                f"{name}: ignored: the {upper.removeprefix(ENV_PREFIX).lower()} section takes a JSON object "
                f"(or set its keys as {upper}{NESTED}<KEY>)"
            )
        elif info is not None:
            report.used.append(name)
        elif NESTED in upper and upper.split(NESTED)[0] in variables:
            report.errors.append(f"{name}: unknown setting{_closest(upper, known)}")
        else:
            report.warnings.append(f"{name}: not a runner setting, ignored{_closest(upper, known)}")
    return report
