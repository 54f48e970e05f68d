"""The settings tree's keys: both spellings, walking the models, and problems told in bwVisu's words.

Every problem names where it is in bwVisu's hyphenated spelling (``gateway-nodes.0.external-ip``) and why;
an unknown key comes with the closest known one (``gateway-node: unknown key (did you mean gateway-nodes?)``).
Values are never repeated in a problem: a typo next to a password must not print the password.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_LISTED_KEYS_MAX = 8  # below this many keys, an unknown key's message lists them all
_NUMBER_TEXT = re.compile(r"^\s*-?\d+(\.\d*)?\s*$")


def hyphenated(name: str) -> str:
    return name.replace("_", "-")


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside ``annotation`` (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, types.UnionType):
        for arg in get_args(annotation):
            if (found := model_of(arg)) is not None:
                return found
    return None


def is_section(annotation: Any) -> bool:
    """A nested section (``api``), not a list of items (``gateway-nodes``) nor a plain value."""
    return get_origin(annotation) is not list and model_of(annotation) is not None


def walk(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model holding the keys at ``loc`` (list indices skipped), or None if ``loc`` leaves the tree."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or (field := current.model_fields.get(str(part).replace("-", "_"))) is None:
            return None
        current = model_of(field.annotation)
    return current


def keys_of(model: type[BaseModel]) -> list[str]:
    return [hyphenated(name) for name in model.model_fields]


def iter_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every field of ``model`` and its sections and list items, depth first, as (path of field names, FieldInfo)."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path, field
        if (inner := model_of(field.annotation)) is not None:
            yield from iter_fields(inner, path)


def unknown_key(key: str, known: list[str]) -> str:
    """``key: unknown key (did you mean ...?)``, in bwVisu's spelling."""
    spelled = hyphenated(key)
    close = difflib.get_close_matches(spelled, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    if len(known) <= _LISTED_KEYS_MAX:
        return f"unknown key (known keys: {', '.join(known)})"
    return "unknown key (see docs/configuration.md for every key)"


def _where(loc: tuple[str | int, ...]) -> str:
    return ".".join(hyphenated(str(part)) for part in loc) or "config"


def underscore_keys(value: Any, loc: tuple[str | int, ...] = ()) -> tuple[Any, list[str]]:
    """``value`` with every key in the models' spelling, and a problem for each key given in both spellings."""
    problems: list[str] = []
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, item in value.items():
            name = str(key).replace("-", "_")
            if name in result:
                problems.append(f"{_where((*loc, name))}: given twice (as {spelled[name]} and {key})")
                continue
            result[name], inner = underscore_keys(item, (*loc, name))
            spelled[name] = str(key)
            problems += inner
        return result, problems
    if isinstance(value, list):
        items = [underscore_keys(item, (*loc, i)) for i, item in enumerate(value)]
        return [item for item, _ in items], [p for _, inner in items for p in inner]
    return value, problems


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden" and loc:
        holder = walk(model, loc[:-1])
        return unknown_key(str(loc[-1]), keys_of(holder) if holder is not None else [])
    text = error["msg"]
    if error["type"] in ("int_type", "float_type", "bool_type") and isinstance(error.get("input"), str):
        if _NUMBER_TEXT.match(number := error["input"].strip()):
            return f'{text}, not a string (write {number}, not "{number}")'
        return f"{text}, not a string"
    return text


def describe_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per error: where (bwVisu's spelling) and why."""
    return [f"{_where(err['loc'])}: {_message(err, model)}" for err in exc.errors()]
