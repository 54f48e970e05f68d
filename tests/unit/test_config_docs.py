"""The settings documented from the model: every field described, the reference page and example current,
the JSON Schema in bwVisu's spelling and as strict as the runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.config import Settings, settings_from_mapping
from runner.configdoc import (
    EXAMPLE,
    EXAMPLE_FILE,
    REFERENCE_FILE,
    REGENERATE,
    config_schema,
    example_file,
    reference_page,
)
from runner.configenv import setting_variables
from runner.configkeys import hyphenated, iter_fields
from tests.unit.config_support import clean_environment  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_field_has_a_description() -> None:
    undescribed = [".".join(path) for path, field in iter_fields(Settings) if not field.description]
    assert undescribed == []


@pytest.mark.parametrize(("name", "render"), [(REFERENCE_FILE, reference_page), (EXAMPLE_FILE, example_file)])
def test_docs_are_current(name: str, render: object) -> None:
    assert callable(render)
    current = (DOCS / name).read_text() if (DOCS / name).is_file() else ""
    assert current == render(), f"docs/{name} is not current; regenerate with: {REGENERATE}"


def test_reference_page_lists_every_key_and_variable() -> None:
    page = reference_page()
    for path, _ in iter_fields(Settings):
        assert f"{hyphenated(path[-1])}`" in page
    for variable in setting_variables(Settings):
        assert f"`{variable}`" in page
    assert str(Path(__file__).resolve().parents[2]) not in page  # no paths of this machine
    assert str(Path.home()) not in page


def test_the_example_is_valid_bwvisu_shaped_and_documented() -> None:
    settings = settings_from_mapping(json.loads(example_file()) | {"etcd": {"user": "runner", "password": "x"}})
    assert len(settings.gateway_nodes) == 2
    assert all("-" in key or key.isalpha() for key in EXAMPLE)  # bwVisu's spelling throughout
    assert "```jsonc" in reference_page()
    assert "// gateways forwards are set up on" in reference_page()


def test_schema_is_in_bwvisu_spelling_and_refuses_unknown_keys() -> None:
    schema = config_schema()
    assert "gateway-nodes" in schema["properties"]
    assert "gateway_nodes" not in schema["properties"]
    assert schema["additionalProperties"] is False
    gateway = schema["$defs"]["GatewayNode"]
    assert gateway["required"] == ["internal-ip", "external-ip", "user"]
    assert gateway["additionalProperties"] is False
    assert gateway["properties"]["port"]["type"] == "integer"
    assert schema["properties"]["api"]["description"] == "the REST API for the web frontend"
