"""The OpenAPI document: per-route error responses with their stable codes, and the templates a runner has.

:func:`errors` turns the error classes a route may raise (:mod:`runner.errors`) into its documented responses:
one per status, whose body's ``error`` is one of that status's codes, each with an example. FastAPI's own
``HTTPValidationError`` 422 is left out: this API never answers in that shape (:mod:`runner.api.errors`).

:func:`install_openapi` makes the document state which templates the runner has, read when the document is
asked for: ``template-name`` is one of them and ``variables`` must hold each variable that template uses. So a
client (or a schema-driven tester) built from the document sends only submissions the runner can accept; what no
document can know (whether the cluster has that user) is answered 422 ``unknown-user`` or ``refused-user``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from runner.api.schemas import ErrorResponse
from runner.errors import ROUTES, RunnerError
from runner.templates import TemplateStore

logger = logging.getLogger(__name__)

_ERROR_REF = "#/components/schemas/ErrorResponse"
_STATUS_TEXT = {
    401: "Missing or wrong basic credentials (answered with WWW-Authenticate)",
    404: "No such resource",
    413: "Request body over the API's cap (refused before it is parsed)",
    422: "The request breaks a rule; the message names the field and the rule",
    500: "Unexpected error in the runner (logged; no details are given)",
    502: "Slurm refused the request",
    503: "The cluster or the runner's state store cannot be reached right now; retry later",
}
# Messages a code is typically answered with, where its default message says little.
_EXAMPLES = {
    "bad-request": "uid: Field required",
    "invalid-user": "uid: must be a POSIX user name: [a-z_][a-z0-9_-]{0,31}",
    "refused-user": "uid: 'root' is the superuser (uid 0); jobs run only as ordinary users",
    "unknown-user": "uid: 'mallory': no such user on the cluster",
    "invalid-template-name": "template-name: template name may not contain '/', '\\' or a newline",
    "unknown-template": "unknown template 'template_nope.txt'",
    "template-error": "template 'broken.txt' is not valid mustache: unclosed tag",
    "invalid-variable": "variables.image_name: value may not contain a '..' path segment",
    "payload-too-large": "request body too large (limit 1048576 bytes)",
    "scheduler-error": "sbatch failed: invalid partition specified: nope",
}


def _responses(*kinds: type[RunnerError]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer with these errors: per status, its codes and examples."""
    by_status: dict[int, list[type[RunnerError]]] = {}
    for kind in dict.fromkeys(kinds):
        by_status.setdefault(kind.status, []).append(kind)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        codes = list(dict.fromkeys(kind.code for kind in group))
        responses[status] = {
            "description": f"{_STATUS_TEXT.get(status, 'Error')}. Codes: {', '.join(codes)}",
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [{"$ref": _ERROR_REF}, {"properties": {"error": {"enum": codes}}}],
                    },
                    "examples": {
                        kind.code: {
                            "summary": (kind.__doc__ or kind.code).strip().splitlines()[0],
                            "value": {"response": _EXAMPLES.get(kind.code, kind.default_public), "error": kind.code},
                        }
                        for kind in group
                    },
                }
            },
        }
    return responses


def answers(route: str) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of ``route`` (``"POST /jobs"``): what :data:`~runner.errors.ROUTES` lists."""
    return _responses(*ROUTES[route])


def _tidy(document: dict[str, Any]) -> None:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("ErrorResponse", ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"))


def _usable(templates: TemplateStore) -> list[tuple[str, list[str]]]:
    usable = []
    for name in templates.names():
        try:
            usable.append((name, templates.variables(name)))
        except RunnerError as exc:  # the same templates GET /templates leaves out
            logger.debug("template %r left out of the OpenAPI document: %s", name, exc)
    return usable


def _state_templates(document: dict[str, Any], usable: list[tuple[str, list[str]]]) -> None:
    submit = document["components"]["schemas"].get("SubmitRequest")
    if submit is None or not usable:
        return
    name = submit["properties"]["template-name"]
    name["enum"] = [template for template, _ in usable]
    name["examples"] = [n for n in name.get("examples", []) if n in name["enum"]] or name["enum"][:1]
    name["description"] += "; the enum lists this runner's templates"
    for rule in ("pattern", "minLength", "maxLength"):  # the names are checked against them already
        name.pop(rule, None)
    submit["oneOf"] = [
        {
            "properties": {
                "template-name": {"const": template},
                "variables": {"required": variables} if variables else {},
            },
        }
        for template, variables in usable
    ]


def install_openapi(app: FastAPI, templates: TemplateStore) -> None:
    """``app.openapi()`` builds the document anew whenever the usable templates change, and caches it otherwise."""
    cached: list[tuple[list[tuple[str, list[str]]], dict[str, Any]]] = []

    def openapi() -> dict[str, Any]:
        usable = _usable(templates)
        if cached and cached[0][0] == usable:
            return cached[0][1]
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
        )
        _tidy(document)
        _state_templates(document, usable)
        cached[:] = [(usable, document)]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
