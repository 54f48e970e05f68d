"""The OpenAPI document states what the API enforces: field rules, the templates it has, each route's errors."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.api.schemas import (
    JOB_ID_PATTERN,
    TEMPLATE_NAME_PATTERN,
    USER_NAME_PATTERN,
    VARIABLE_NAME_PATTERN,
    VARIABLE_VALUE_PATTERN,
    JobResponse,
)
from runner.records import JobRecord
from runner.templates import template_name_problem, variable_name_problem, variable_value_problem
from runner.users import user_name_problem
from tests.unit.api_support import EXAMPLE_TEMPLATES, FakeJobService, client_for, make_app

pytestmark = pytest.mark.unit

# characters near every rule's edges: separators, dots, dashes, case, digits, controls, non-ASCII
_EDGES = st.text(alphabet=st.sampled_from("aZ09_-./\\ \n\t\x00\x7f\u00e9\u200b:$"), max_size=12)


def _matches(pattern: str) -> Callable[[str], bool]:
    # JSON Schema anchors: '$' is the end of the string (Python's also matches before a final newline)
    inner = re.compile(pattern.removeprefix("^").removesuffix("$"))
    return lambda value: inner.fullmatch(value) is not None


def _agree(pattern: str, problem: Callable[[str], str | None], value: str) -> None:
    assert _matches(pattern)(value) == (problem(value) is None), repr(value)


@given(st.one_of(_EDGES, st.from_regex(USER_NAME_PATTERN, fullmatch=True)))
def test_user_name_pattern_is_the_rule(value: str) -> None:
    _agree(USER_NAME_PATTERN, user_name_problem, value)


@given(st.one_of(_EDGES, st.from_regex(VARIABLE_NAME_PATTERN, fullmatch=True), st.text(max_size=70)))
def test_variable_name_pattern_is_the_rule(value: str) -> None:
    _agree(VARIABLE_NAME_PATTERN, variable_name_problem, value)


@given(st.one_of(_EDGES, st.from_regex(VARIABLE_VALUE_PATTERN.replace("4096", "20"), fullmatch=True)))
def test_variable_value_pattern_is_the_rule(value: str) -> None:
    _agree(VARIABLE_VALUE_PATTERN, variable_value_problem, value)


@pytest.mark.parametrize(("length", "accepted"), [(4096, True), (4097, False)])
def test_variable_value_length_is_the_rule(length: int, accepted: bool) -> None:
    assert _matches(VARIABLE_VALUE_PATTERN)("a" * length) is accepted
    assert (variable_value_problem("a" * length) is None) is accepted


@given(_EDGES)
def test_template_name_pattern_allows_only_what_the_rule_allows(value: str) -> None:
    if _matches(TEMPLATE_NAME_PATTERN)(value):
        assert template_name_problem(value) is None, repr(value)
    if value.isascii():
        _agree(TEMPLATE_NAME_PATTERN, template_name_problem, value)


def test_job_id_pattern_is_the_routes_rule() -> None:
    assert _matches(JOB_ID_PATTERN)("3f2c9a7e5b1d4c6f8a0e2b4d6f8a0c1e")
    assert not _matches(JOB_ID_PATTERN)("-x")
    assert not _matches(JOB_ID_PATTERN)("a" * 129)


async def document(templates: Path = EXAMPLE_TEMPLATES) -> dict[str, Any]:
    async with client_for(make_app(FakeJobService(), templates=templates), auth=False) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _error_codes(operation: dict[str, Any]) -> dict[str, list[str]]:
    codes = {}
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            schema = response["content"]["application/json"]["schema"]
            codes[status] = schema["allOf"][1]["properties"]["error"]["enum"]
    return codes


async def test_each_route_lists_only_its_own_errors_and_codes() -> None:
    paths = (await document())["paths"]
    assert _error_codes(paths["/templates"]["get"]) == {"401": ["unauthorized"], "500": ["internal-error"]}
    assert _error_codes(paths["/jobs/{job_id}"]["get"]) == {
        "401": ["unauthorized"],
        "422": ["bad-request"],
        "404": ["no-such-job"],
        "500": ["internal-error"],
        "503": ["state-unavailable"],
    }
    cancel = _error_codes(paths["/jobs/{job_id}"]["delete"])
    assert cancel["404"] == ["no-such-running-job"]
    assert "422" not in cancel
    submit = _error_codes(paths["/jobs"]["post"])
    assert set(submit) == {"401", "413", "422", "429", "500", "502", "503"}
    assert set(submit["422"]) == {
        "bad-request",
        "invalid-user",
        "refused-user",
        "unknown-user",
        "invalid-template-name",
        "unknown-template",
        "template-error",
        "keyhole-template-error",
        "invalid-variable",
    }
    assert set(submit["503"]) == {
        "cluster-unavailable",
        "scheduler-unavailable",
        "submission-indeterminate",
        "state-unavailable",
    }
    check_user = _error_codes(paths["/cluster/check-user/{username}"]["get"])
    assert check_user["404"] == ["no-such-user"]
    assert check_user["422"] == ["invalid-user"]


async def test_fastapi_validation_shape_is_not_documented() -> None:
    schema = await document()
    assert "HTTPValidationError" not in str(schema)
    assert "ValidationError" not in schema["components"]["schemas"]


def _fields(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, component in schema["components"]["schemas"].items():
        for field, spec in component.get("properties", {}).items():
            yield name, field, spec


async def test_every_field_has_a_description_and_an_example() -> None:
    missing = [
        f"{name}.{field}"
        for name, field, spec in _fields(await document())
        if "description" not in spec or not ({"examples", "$ref"} & set(spec) or "$ref" in str(spec.get("items")))
    ]
    assert missing == []


async def test_request_rules_are_stated() -> None:
    schema = await document()
    submit = schema["components"]["schemas"]["SubmitRequest"]
    assert submit["properties"]["uid"]["pattern"] == USER_NAME_PATTERN
    variables = submit["properties"]["variables"]
    assert variables["propertyNames"]["pattern"] == VARIABLE_NAME_PATTERN
    assert variables["additionalProperties"]["pattern"] == VARIABLE_VALUE_PATTERN
    job_id = schema["paths"]["/jobs/{job_id}"]["get"]["parameters"][0]["schema"]
    assert job_id["pattern"] == JOB_ID_PATTERN
    username = schema["paths"]["/cluster/check-user/{username}"]["get"]["parameters"][0]["schema"]
    assert username["pattern"] == USER_NAME_PATTERN


async def test_document_lists_the_runners_templates_and_their_variables(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(EXAMPLE_TEMPLATES, templates)
    app = make_app(FakeJobService(), templates=templates)
    async with client_for(app) as client:
        listed = (await client.get("/templates")).json()["templates"]
        before = (await client.get("/openapi.json")).json()["components"]["schemas"]["SubmitRequest"]
        (templates / "added.txt").write_text("#!/bin/bash\necho {{greeting}}\n")
        after = (await client.get("/openapi.json")).json()["components"]["schemas"]["SubmitRequest"]
    assert before["properties"]["template-name"]["enum"] == [t["name"] for t in listed]
    variants = {v["properties"]["template-name"]["const"]: v["properties"]["variables"] for v in before["oneOf"]}
    assert variants == {t["name"]: ({"required": t["variables"]} if t["variables"] else {}) for t in listed}
    assert "added.txt" in after["properties"]["template-name"]["enum"]
    assert {"template-name": {"const": "added.txt"}, "variables": {"required": ["greeting"]}} in [
        v["properties"] for v in after["oneOf"]
    ]


async def test_without_templates_the_name_rule_is_stated(tmp_path: Path) -> None:
    submit = (await document(tmp_path))["components"]["schemas"]["SubmitRequest"]
    assert submit["properties"]["template-name"]["pattern"] == TEMPLATE_NAME_PATTERN
    assert "oneOf" not in submit


def test_details_on_the_wire_are_the_records_details() -> None:
    details = {"slurm-job-id": "7", "slurm-state": "RUNNING", "from-a-later-runner": "kept"}
    record = JobRecord(job_id="j", uid="alice", template_name="t.txt", variables={}, details=details)
    wire = JobResponse.from_record(record).model_dump(mode="json", by_alias=True)
    assert wire["details"] == details
    schema = JobResponse.model_json_schema(by_alias=True)["$defs"]["JobDetails"]
    assert schema["additionalProperties"] == {"type": "string"}
    assert {"slurm-job-id", "node-list", "exit-code", "scheduler-state", "keyhole-health"} <= set(schema["properties"])
