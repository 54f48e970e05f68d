"""Batch-script templates: a directory of mustache files, the input rules, and rendering via ``chevron``.

Every name and value that reaches a template is checked by the rules below and *rejected* with an error that
names the variable and the rule; nothing is ever stripped or escaped into shape. The pure ``*_problem``
functions hold the rules so the API's request schemas and :class:`TemplateStore` apply exactly the same ones.

Rendering never HTML-escapes (a batch script is not HTML): every ``{{name}}`` is rendered as ``{{{name}}}``.
Values are strings, so a section ``{{#name}}...{{/name}}`` is a truthiness test (non-empty value) that renders
its body once, in the enclosing scope. Partials, lambdas and dotted names are not part of the template language
here. A line ``#KEYHOLE-REQUEST-PORTS N`` may appear at most once, by the keyhole module's one rule
(:func:`runner.keyhole.script.find_directive`); the store reports ``N`` but leaves the line in place, since its
expansion belongs to the keyhole module.

A line ``#KEYHOLE-SESSION-URL <pattern>`` (at most once) says that the template's application admits only the
holder of the job's session secret, and where a browser lands in the session: ``{host}``, ``{port}`` and
``{password}`` in the pattern become a service's public address, port and the URL-quoted secret
(:func:`session_url`), e.g. ``http://{host}:{port}/?password={password}``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import chevron
from chevron.tokenizer import ChevronError, tokenize

from runner.errors import InvalidTemplateName, InvalidVariable, TemplateError, UnknownTemplate
from runner.keyhole.script import find_directive

VALUE_MAX_LENGTH = 4096
NAME_MAX_LENGTH = 255
SESSION_URL_DIRECTIVE = "#KEYHOLE-SESSION-URL"
SESSION_URL_FIELDS = frozenset({"host", "port", "password"})

_VALUE_CHARS = re.compile(r"[A-Za-z0-9./_-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SESSION_LINE = re.compile(rf"^[ \t]*{re.escape(SESSION_URL_DIRECTIVE)}(?![A-Za-z0-9_-])(?P<rest>.*)$", re.MULTILINE)
_SESSION_PATTERN = re.compile(r"[ \t]+(?P<url>https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%{}-]+)[ \t]*\r?")
# Section keys get a suffix no identifier can have, so a variable may be both printed and tested.
_SECTION_SUFFIX = "\x00if"
_INVERTED_SUFFIX = "\x00unless"
# The scope a true section renders in: truthy (chevron skips falsy scopes) and without identifier keys.
_TRUE_SCOPE: list[dict[str, bool]] = [{"\x00": True}]


def variable_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable variable name, or None."""
    if not _IDENTIFIER.fullmatch(name):
        return "variable names must be ASCII identifiers (letters, digits, '_'; not starting with a digit; <= 64)"
    return None


def variable_value_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable variable value (SPEC: only letters, digits, '.', '/', '-', '_'), or None."""
    if len(value) > VALUE_MAX_LENGTH:
        return f"value longer than {VALUE_MAX_LENGTH} characters"
    if not _VALUE_CHARS.fullmatch(value):
        return "value may contain only ASCII letters, digits, '.', '/', '-' and '_'"
    if ".." in value.split("/"):
        return "value may not contain a '..' path segment"
    if value.startswith("-"):
        return "value may not start with '-' (it would read as a command-line option)"
    return None


def template_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable template name (SPEC: no '/', '\\' or newline), or None."""
    if not name:
        return "template name may not be empty"
    if len(name) > NAME_MAX_LENGTH:
        return f"template name longer than {NAME_MAX_LENGTH} characters"
    if "/" in name or "\\" in name or "\n" in name:
        return "template name may not contain '/', '\\' or a newline"
    if any(not ch.isprintable() for ch in name):
        return "template name may not contain control characters"
    if name in {".", ".."}:
        return "template name may not be '.' or '..'"
    return None


def check_variables(variables: Mapping[str, str]) -> None:
    """Raise :class:`InvalidVariable` naming the first variable that breaks a rule."""
    for name, value in variables.items():
        if (problem := variable_name_problem(name)) is not None:
            raise InvalidVariable(f"variables: invalid name {name[:64]!r}: {problem}")
        if (problem := variable_value_problem(value)) is not None:
            raise InvalidVariable(f"variables.{name}: {problem}")


def check_template_name(name: str) -> None:
    if (problem := template_name_problem(name)) is not None:
        raise InvalidTemplateName(f"template-name: {problem}")


@dataclass(frozen=True)
class _Parsed:
    tokens: list[tuple[str, str]]
    variables: list[str]
    keyhole_ports: int | None
    session_url: str | None


def session_url(pattern: str, *, host: str, port: int, password: str) -> str:
    """A service's session URL from a template's ``#KEYHOLE-SESSION-URL`` pattern."""
    return pattern.format(host=host, port=port, password=quote(password, safe=""))


def _session_url(name: str, text: str) -> str | None:
    """The pattern of the one ``#KEYHOLE-SESSION-URL`` line, None without one; TemplateError otherwise."""
    lines = _SESSION_LINE.findall(text)
    if len(lines) > 1:
        raise TemplateError(f"template {name!r} has {SESSION_URL_DIRECTIVE} {len(lines)} times; at most once")
    if not lines:
        return None
    found = _SESSION_PATTERN.fullmatch(lines[0])
    if found is None:
        raise TemplateError(f"template {name!r}: {SESSION_URL_DIRECTIVE} needs one http(s) URL pattern")
    pattern = found["url"]
    try:
        parts = [(field, spec, conv) for _, field, spec, conv in string.Formatter().parse(pattern) if field is not None]
    except ValueError as exc:
        raise TemplateError(f"template {name!r}: {SESSION_URL_DIRECTIVE}: {exc}") from None
    fields = {field for field, _, _ in parts}
    plain = all(not spec and conv is None for _, spec, conv in parts)
    if not plain or not fields <= SESSION_URL_FIELDS or "password" not in fields:
        allowed = ", ".join("{" + f + "}" for f in sorted(SESSION_URL_FIELDS))
        raise TemplateError(
            f"template {name!r}: {SESSION_URL_DIRECTIVE} may use only {allowed}, and must use {{password}}"
        )
    return pattern


def _keyhole_ports(name: str, text: str) -> int | None:
    """``N`` of the one ``#KEYHOLE-REQUEST-PORTS N`` line, None without one; TemplateError otherwise."""
    try:
        found = find_directive(text)  # the keyhole's one rule, so a template the store accepts also expands
    except ValueError as exc:
        raise TemplateError(f"template {name!r}: {exc}") from None
    return found[1] if found is not None else None


def _parse(name: str, text: str) -> _Parsed:
    """Tokenize with chevron and check the template against the rules above."""
    try:
        raw = list(tokenize(text))
    except ChevronError as exc:
        raise TemplateError(f"template {name!r} is not valid mustache: {str(exc).splitlines()[0]}") from None
    tokens: list[tuple[str, str]] = []
    seen: dict[str, None] = {}
    open_sections: list[str] = []
    for tag, key in raw:
        if tag in {"literal", "comment", "set delimiter"}:
            tokens.append((tag, key))
            continue
        if tag == "partial":
            raise TemplateError(f"template {name!r} uses a partial ({key!r}); partials are not supported")
        if variable_name_problem(key) is not None:
            raise TemplateError(f"template {name!r} uses {key!r}, which is not an identifier")
        seen.setdefault(key)
        if tag in {"variable", "no escape"}:
            tokens.append(("no escape", key))
        elif tag == "section":
            open_sections.append(key + _SECTION_SUFFIX)
            tokens.append(("section", open_sections[-1]))
        elif tag == "inverted section":
            # Rendered as a section on "not value", so both kinds push the same clean scope.
            open_sections.append(key + _INVERTED_SUFFIX)
            tokens.append(("section", open_sections[-1]))
        elif tag == "end":
            tokens.append(("end", open_sections.pop()))
        else:
            raise TemplateError(f"template {name!r} uses an unsupported mustache tag ({tag})")
    return _Parsed(
        tokens=tokens,
        variables=list(seen),
        keyhole_ports=_keyhole_ports(name, text),
        session_url=_session_url(name, text),
    )


class TemplateStore:
    """The batch-script templates in one directory; files are re-read when they change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, tuple[tuple[int, int], _Parsed]] = {}

    def names(self) -> list[str]:
        """Names of the usable templates, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name
            for p in self.directory.iterdir()
            if not p.name.startswith(".") and template_name_problem(p.name) is None and self._inside(p)
        )

    def variables(self, name: str) -> list[str]:
        """The variable names the template uses (sections included), in order of first use."""
        return list(self._load(name).variables)

    def keyhole_request(self, name: str) -> int | None:
        """``N`` of the template's ``#KEYHOLE-REQUEST-PORTS N`` line, or None when it has none."""
        return self._load(name).keyhole_ports

    def session_url(self, name: str) -> str | None:
        """The template's ``#KEYHOLE-SESSION-URL`` pattern, or None when its application asks for no secret."""
        return self._load(name).session_url

    def render(self, name: str, variables: Mapping[str, str]) -> str:
        """The batch script; rejects bad names and values and missing variables, never strips or escapes."""
        return self.prepare(name, variables)[0]

    def prepare(self, name: str, variables: Mapping[str, str]) -> tuple[str, int | None, str | None]:
        """:meth:`render`, :meth:`keyhole_request` and :meth:`session_url` with one look at the file (a
        submission needs all three; each look resolves the path)."""
        parsed = self._checked(name, variables)
        data: dict[str, object] = dict(variables)
        for var in parsed.variables:
            # A one-element list renders a section once, in a scope that hides nothing (a string scope would
            # expose str attributes such as {{upper}}); an empty list skips it.
            data[var + _SECTION_SUFFIX] = _TRUE_SCOPE if variables[var] else []
            data[var + _INVERTED_SUFFIX] = [] if variables[var] else _TRUE_SCOPE
        return chevron.render(parsed.tokens, data), parsed.keyhole_ports, parsed.session_url

    def _checked(self, name: str, variables: Mapping[str, str]) -> _Parsed:
        check_template_name(name)
        check_variables(variables)
        parsed = self._load(name)
        missing = [v for v in parsed.variables if v not in variables]
        if missing:
            raise InvalidVariable(f"variables: missing {', '.join(missing)} (used by template {name!r})")
        return parsed

    def _inside(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved.is_file() and resolved.is_relative_to(self.directory.resolve())

    def _load(self, name: str) -> _Parsed:
        check_template_name(name)
        path = self.directory / name
        if not self._inside(path):
            raise UnknownTemplate(
                f"unknown template {name!r}", internal=f"no regular file {name!r} in {self.directory}"
            )
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UnknownTemplate(f"unknown template {name!r}", internal=f"cannot read {path}: {exc}") from None
        parsed = _parse(name, text)
        self._cache[name] = (key, parsed)
        return parsed
