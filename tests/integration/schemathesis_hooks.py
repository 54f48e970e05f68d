"""schemathesis hooks for tests/integration/test_api_schemathesis.py, loaded by ``st`` via SCHEMATHESIS_HOOKS.

Whether an account exists on the cluster is the one rule of ``POST /jobs`` no schema can state (the document
lists its answer, 422 ``unknown-user`` or ``refused-user``): schema-valid submissions are sent for the cluster's
users (``BWVISU_ST_USERS``), so schemathesis's positive-data check holds the API to everything else. Every answer
is appended to ``BWVISU_ST_LOG`` (one JSON line: method, path template, mode, status, error code) for the test.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case


def _positive(case: Case[Any]) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def before_call(ctx: Any, case: Case[Any], **kwargs: Any) -> None:
    users = os.environ["BWVISU_ST_USERS"].split(",")
    if (case.method.upper(), case.path) == ("POST", "/jobs") and _positive(case) and isinstance(case.body, dict):
        uid = case.body.get("uid")
        if isinstance(uid, str) and uid not in users:
            case.body = {**case.body, "uid": users[len(uid) % len(users)]}


@schemathesis.hook
def after_call(ctx: Any, case: Case[Any], response: Response) -> None:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    line = {
        "operation": f"{case.method.upper()} {case.path}",
        "positive": _positive(case),
        "status": response.status_code,
        "error": error,
    }
    with open(os.environ["BWVISU_ST_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")
