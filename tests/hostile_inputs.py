"""A corpus of hostile submissions, shared by the API's unit tests and the integration tests.

Every entry is a ``POST /jobs`` JSON body (or raw bytes) that must be refused with a 4xx before anything
reaches the job service, a shell or ``sbatch``. ``field`` names what the error message must mention.
Integration tests reuse :data:`HOSTILE_SUBMISSIONS` and check the simulator's command log stays clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VALID_VARIABLES: dict[str, str] = {
    "expected_runtime_in_minutes": "15",
    "number_of_nodes": "1",
    "tasks_per_node": "1",
    "image_name": "ubuntu_nemo.simg",
}
VALID_SUBMISSION: dict[str, Any] = {
    "uid": "alice",
    "template-name": "template_xpra.txt",
    "variables": VALID_VARIABLES,
}

BIG = 10 * 1024 * 1024

# Values that break SPEC's rule (only letters, digits, '.', '/', '-', '_') or our stricter ones.
HOSTILE_VALUES: dict[str, str] = {
    "semicolon": "x; rm -rf ~",
    "command-substitution": "$(id)",
    "backticks": "`id`",
    "pipe": "a|b",
    "ampersand": "a&&b",
    "redirect": "a>b",
    "space": "a b",
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "tab": "a\tb",
    "nul": "a\x00b",
    "quote": "a'b",
    "double-quote": 'a"b',
    "dollar-brace": "${HOME}",
    "glob": "*",
    "mustache": "{{image_name}}",
    "dotdot": "../../etc/shadow",
    "dotdot-alone": "..",
    "dotdot-inner": "a/../../b",
    "leading-dash": "--wrap=id",
    "unicode-slash": "a\u2215b",  # DIVISION SLASH looks like '/'
    "unicode-dot": "a\u2024b",  # ONE DOT LEADER looks like '.'
    "unicode-hyphen": "a\u2010b",  # HYPHEN looks like '-'
    "fullwidth-letter": "\uff41",  # FULLWIDTH LATIN SMALL LETTER A
    "cyrillic-a": "\u0430lice",
    "arabic-digit": "\u0661",
    "too-long": "a" * 4097,
}

HOSTILE_VARIABLE_NAMES: dict[str, str] = {
    "name-semicolon": "a;b",
    "name-dollar": "$x",
    "name-space": "a b",
    "name-dot": "a.b",
    "name-leading-digit": "1a",
    "name-empty": "",
    "name-unicode": "\u0430",
    "name-nul": "a\x00",
}

HOSTILE_TEMPLATE_NAMES: dict[str, str] = {
    "tpl-slash": "../template_xpra.txt",
    "tpl-absolute": "/etc/passwd",
    "tpl-backslash": "..\\template_xpra.txt",
    "tpl-newline": "template_xpra.txt\n",
    "tpl-nul": "template_xpra.txt\x00",
    "tpl-control": "template\x1b[31m.txt",
    "tpl-empty": "",
    "tpl-dot": ".",
    "tpl-dotdot": "..",
    "tpl-unknown": "no_such_template.txt",
    "tpl-semicolon": "template_xpra.txt; id",
}

HOSTILE_UIDS: dict[str, str] = {
    "uid-semicolon": "alice;id",
    "uid-substitution": "$(id)",
    "uid-backticks": "`id`",
    "uid-space": "alice bob",
    "uid-newline": "alice\n",
    "uid-nul": "alice\x00",
    "uid-dotdot": "..",
    "uid-slash": "../root",
    "uid-option": "-u",
    "uid-uppercase": "Alice",
    "uid-empty": "",
    "uid-too-long": "a" * 33,
    "uid-unicode": "\u0430lice",
}


@dataclass(frozen=True)
class Hostile:
    """One hostile request body; ``field`` must appear in the error message."""

    label: str
    body: Any
    field: str


def _with(**changes: Any) -> dict[str, Any]:
    body = dict(VALID_SUBMISSION)
    body["variables"] = dict(VALID_VARIABLES)
    body.update(changes)
    return body


def _cases() -> list[Hostile]:
    cases: list[Hostile] = []
    for label, value in HOSTILE_VALUES.items():
        cases.append(Hostile(label, _with(variables={**VALID_VARIABLES, "image_name": value}), "image_name"))
    for label, name in HOSTILE_VARIABLE_NAMES.items():
        cases.append(Hostile(label, _with(variables={**VALID_VARIABLES, name: "x"}), "variables"))
    for label, name in HOSTILE_TEMPLATE_NAMES.items():
        cases.append(Hostile(label, _with(**{"template-name": name}), "template"))
    for label, uid in HOSTILE_UIDS.items():
        cases.append(Hostile(label, _with(uid=uid), "uid"))
    missing = [
        Hostile("missing-uid", {k: v for k, v in VALID_SUBMISSION.items() if k != "uid"}, "uid"),
        Hostile(
            "missing-template", {k: v for k, v in VALID_SUBMISSION.items() if k != "template-name"}, "template-name"
        ),
        Hostile("missing-variables", {k: v for k, v in VALID_SUBMISSION.items() if k != "variables"}, "variables"),
        Hostile("missing-variable", _with(variables={"number_of_nodes": "1"}), "expected_runtime_in_minutes"),
    ]
    wrong_types = [
        Hostile("uid-number", _with(uid=1000), "uid"),
        Hostile("uid-list", _with(uid=["alice"]), "uid"),
        Hostile("template-null", _with(**{"template-name": None}), "template-name"),
        Hostile("variables-list", _with(variables=["a", "b"]), "variables"),
        Hostile("variables-string", _with(variables="image_name=x"), "variables"),
        Hostile("value-number", _with(variables={**VALID_VARIABLES, "number_of_nodes": 1}), "number_of_nodes"),
        Hostile("value-object", _with(variables={**VALID_VARIABLES, "image_name": {"a": "b"}}), "image_name"),
        Hostile("value-bool", _with(variables={**VALID_VARIABLES, "image_name": True}), "image_name"),
        Hostile("body-list", [VALID_SUBMISSION], "body"),
        Hostile("body-string", "alice", "body"),
    ]
    return cases + missing + wrong_types


HOSTILE_SUBMISSIONS: list[Hostile] = _cases()

# Raw bodies that are not JSON at all, or far too big to be parsed.
HOSTILE_RAW_BODIES: dict[str, bytes] = {
    "not-json": b"uid=alice&template-name=x",
    "truncated-json": b'{"uid": "alice", "template-name": ',
    "empty": b"",
    "invalid-utf8": b'{"uid": "\xff\xfe"}',
}
HUGE_VALUE_SUBMISSION: dict[str, Any] = _with(variables={**VALID_VARIABLES, "image_name": "a" * BIG})
