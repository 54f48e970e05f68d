"""TemplateStore: names, variables, rendering without escaping, rejection of bad input, the keyhole line."""

from __future__ import annotations

import os
from pathlib import Path

import chevron.renderer
import pytest

from runner.errors import InvalidTemplateName, InvalidVariable, KeyholeTemplateError, TemplateError, UnknownTemplate
from runner.keyhole.script import expand_keyhole_request, requested_ports
from runner.templates import TemplateStore, check_variables, session_url, variable_value_problem
from tests.hostile_inputs import HOSTILE_TEMPLATE_NAMES, HOSTILE_VALUES, HOSTILE_VARIABLE_NAMES, VALID_VARIABLES

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "runner" / "templates"


@pytest.fixture
def store(tmp_path: Path) -> TemplateStore:
    (tmp_path / "plain.txt").write_text("#SBATCH --time={{minutes}}\nrun {{image}} {{image}}\n")
    return TemplateStore(tmp_path)


def write(store: TemplateStore, name: str, text: str) -> str:
    (store.directory / name).write_text(text)
    return name


def test_examples_listed_with_their_variables() -> None:
    store = TemplateStore(EXAMPLES)
    assert store.names() == ["template_webapp.txt", "template_xpra.txt"]
    assert store.variables("template_xpra.txt") == [
        "expected_runtime_in_minutes",
        "number_of_nodes",
        "tasks_per_node",
        "image_name",
    ]
    assert store.keyhole_request("template_xpra.txt") == 1
    assert store.keyhole_request("template_webapp.txt") == 1


def test_xpra_example_renders_spec_submission() -> None:
    script = TemplateStore(EXAMPLES).render("template_xpra.txt", VALID_VARIABLES)
    assert "#SBATCH --time=15\n" in script
    assert "#SBATCH --nodes=1\n" in script
    assert '"$HOME/ubuntu_nemo.simg"' in script
    assert '--bind-tcp="0.0.0.0:$KEYHOLE_PORT0" --tcp-auth="file:filename=$SESSION_DIR/password"' in script
    assert "--html=on --start-child=xterm --exit-with-children=yes" in script
    # Xpra 3.1 refuses --exit-with-children unless the session has a --start-child command
    assert "--start=" not in script
    assert script.count("#KEYHOLE-REQUEST-PORTS 1\n") == 1  # left for the keyhole module to expand
    assert "{{" not in script


def test_webapp_example_listens_on_keyhole_port() -> None:
    script = TemplateStore(EXAMPLES).render("template_webapp.txt", VALID_VARIABLES)
    assert '"$KEYHOLE_PORT0"' in script
    assert '"${SIM_NODE_ADDR:-0.0.0.0}"' in script  # every address on a real node; its own in the simulator
    assert "((sys.argv[2], int(sys.argv[1]))" in script
    assert "bwvisu webapp on" in script


def test_render_substitutes_every_use(store: TemplateStore) -> None:
    assert (
        store.render("plain.txt", {"minutes": "15", "image": "a/b.simg"})
        == "#SBATCH --time=15\nrun a/b.simg a/b.simg\n"
    )


def test_rendered_tokens_bypass_chevron_escaping(store: TemplateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chevron.renderer, "_html_escape", lambda s: "ESCAPED")
    assert store.render("plain.txt", {"minutes": "1", "image": "i"}) == "#SBATCH --time=1\nrun i i\n"


def test_sections_are_truthiness_tests_in_the_enclosing_scope(store: TemplateStore) -> None:
    name = write(store, "sec.txt", "{{#gpu}}--gres=gpu:{{gpu}} {{upper}}{{/gpu}}{{^gpu}}cpu-only{{/gpu}}\n")
    assert store.variables(name) == ["gpu", "upper"]
    assert store.render(name, {"gpu": "2", "upper": "u"}) == "--gres=gpu:2 u\n"
    assert store.render(name, {"gpu": "", "upper": "u"}) == "cpu-only\n"


def test_missing_variables_are_named(store: TemplateStore) -> None:
    with pytest.raises(InvalidVariable, match="missing minutes, image"):
        store.render("plain.txt", {})
    with pytest.raises(InvalidVariable, match="missing image"):
        store.render("plain.txt", {"minutes": "1"})


def test_extra_variables_are_checked_but_allowed(store: TemplateStore) -> None:
    assert store.render("plain.txt", {"minutes": "1", "image": "i", "other": "o"}).startswith("#SBATCH")
    with pytest.raises(InvalidVariable, match=r"variables\.other"):
        store.render("plain.txt", {"minutes": "1", "image": "i", "other": "$(id)"})


@pytest.mark.parametrize("value", list(HOSTILE_VALUES.values()), ids=list(HOSTILE_VALUES))
def test_hostile_values_rejected_naming_variable(store: TemplateStore, value: str) -> None:
    with pytest.raises(InvalidVariable, match=r"variables\.image: "):
        store.render("plain.txt", {"minutes": "1", "image": value})


@pytest.mark.parametrize("name", list(HOSTILE_VARIABLE_NAMES.values()), ids=list(HOSTILE_VARIABLE_NAMES))
def test_hostile_variable_names_rejected(name: str) -> None:
    with pytest.raises(InvalidVariable, match="identifiers"):
        check_variables({name: "x"})


@pytest.mark.parametrize("value", ["", "15", "ubuntu_nemo.simg", "dir/sub-dir/x_1.simg", ".hidden", "a..b", "./x"])
def test_acceptable_values(value: str) -> None:
    assert variable_value_problem(value) is None


def test_value_length_limit() -> None:
    assert variable_value_problem("a" * 4096) is None
    assert variable_value_problem("a" * 4097) == "value longer than 4096 characters"


@pytest.mark.parametrize(
    "name",
    [v for k, v in HOSTILE_TEMPLATE_NAMES.items() if k not in {"tpl-unknown", "tpl-semicolon"}],
    ids=[k for k in HOSTILE_TEMPLATE_NAMES if k not in {"tpl-unknown", "tpl-semicolon"}],
)
def test_hostile_template_names_rejected(store: TemplateStore, name: str) -> None:
    with pytest.raises(InvalidTemplateName, match="template-name: "):
        store.render(name, {})
    with pytest.raises(InvalidTemplateName):
        store.variables(name)


def test_unknown_templates(store: TemplateStore, tmp_path: Path) -> None:
    (tmp_path / "subdir").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret {{x}}\n")
    os.symlink(outside, tmp_path / "link.txt")
    os.symlink(tmp_path / "plain.txt", tmp_path / "inner-link.txt")
    for name in ["nope.txt", "subdir", "link.txt", "template_xpra.txt; id"]:
        with pytest.raises(UnknownTemplate, match="unknown template"):
            store.render(name, {"x": "1"})
    assert store.names() == ["inner-link.txt", "plain.txt"]


def test_missing_directory_has_no_templates(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "absent")
    assert store.names() == []
    with pytest.raises(UnknownTemplate):
        store.variables("x.txt")


def test_changed_file_is_reread(store: TemplateStore) -> None:
    assert store.variables("plain.txt") == ["minutes", "image"]
    write(store, "plain.txt", "{{other_variable}}\n")
    assert store.variables("plain.txt") == ["other_variable"]


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("x\n", None),
        ("#KEYHOLE-REQUEST-PORTS 1\n", 1),
        ("  #KEYHOLE-REQUEST-PORTS   3  \n", 3),
        ("a\n#KEYHOLE-REQUEST-PORTS 2", 2),
        ("# KEYHOLE-REQUEST-PORTS 2 is only a comment\n", None),
    ],
)
def test_keyhole_request(store: TemplateStore, text: str, ports: int | None) -> None:
    assert store.keyhole_request(write(store, "k.txt", text)) == ports


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("#KEYHOLE-REQUEST-PORTS 1\n#KEYHOLE-REQUEST-PORTS 1\n", r"only once \(lines 1, 2\)"),
        ("#KEYHOLE-REQUEST-PORTS 0\n", "N from 1 to 65535"),
        ("#KEYHOLE-REQUEST-PORTS -1\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS two\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS 1 2\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS {{n}}\n", "positive integer"),
        ("{{#a}}\n", "not valid mustache"),
        ("{{> other}}\n", "partial"),
        ("{{a.b}}\n", "not an identifier"),
        ("{{#a}}{{.}}{{/a}}\n", "not an identifier"),
    ],
)
def test_broken_templates(store: TemplateStore, text: str, match: str) -> None:
    name = write(store, "bad.txt", text)
    with pytest.raises(TemplateError, match=match):
        store.render(name, {"a": "1", "n": "1"})


def test_render_does_not_expand_keyhole_line(store: TemplateStore) -> None:
    name = write(store, "k.txt", "#KEYHOLE-REQUEST-PORTS 1\necho $KEYHOLE_PORT0\n")
    assert store.render(name, {}) == "#KEYHOLE-REQUEST-PORTS 1\necho $KEYHOLE_PORT0\n"


def test_session_url_directive_is_read_and_filled(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("#!/bin/sh\n#KEYHOLE-SESSION-URL https://{host}:{port}/connect?pw={password}\n")
    (tmp_path / "plain.txt").write_text("#!/bin/sh\n")
    store = TemplateStore(tmp_path)
    pattern = store.session_url("s.txt")
    assert pattern == "https://{host}:{port}/connect?pw={password}"
    assert store.session_url("plain.txt") is None
    filled = session_url(pattern, host="192.0.2.1", port=50123, password="a b&c/d")
    assert filled == "https://192.0.2.1:50123/connect?pw=a%20b%26c%2Fd"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("#KEYHOLE-SESSION-URL\n", "needs one http(s) URL"),
        ("#KEYHOLE-SESSION-URL ftp://{host}/{password}\n", "needs one http(s) URL"),
        ("#KEYHOLE-SESSION-URL http://{host}:{port}/ extra\n", "needs one http(s) URL"),
        ("#KEYHOLE-SESSION-URL http://{host}:{port}/\n", "must use {password}"),
        ("#KEYHOLE-SESSION-URL http://{host}/{password}{secret}\n", "may use only"),
        ("#KEYHOLE-SESSION-URL http://{host.__class__}/{password}\n", "may use only"),
        ("#KEYHOLE-SESSION-URL http://{host!r}/{password}\n", "may use only"),
        ("#KEYHOLE-SESSION-URL http://{host}:{port:05}/{password}\n", "may use only"),
        ("#KEYHOLE-SESSION-URL http://{host/{password}\n", "KEYHOLE-SESSION-URL"),
        ("#KEYHOLE-SESSION-URL http://a/{password}\n#KEYHOLE-SESSION-URL http://b/{password}\n", "at most once"),
    ],
)
def test_bad_session_url_directives_are_template_errors(tmp_path: Path, line: str, problem: str) -> None:
    (tmp_path / "t.txt").write_text("#!/bin/sh\n" + line)
    with pytest.raises(TemplateError) as info:
        TemplateStore(tmp_path).session_url("t.txt")
    assert problem in info.value.public


# The store and the keyhole expansion judge the directive by one rule (runner.keyhole.script.find_directive):
# a template the store accepts is one the expansion at submission accepts, and the other way round.
DIRECTIVE_EDGES: list[tuple[str, int | str | None]] = [
    ("  \t#KEYHOLE-REQUEST-PORTS 2\n", 2),  # leading blanks
    ("#KEYHOLE-REQUEST-PORTS 007 \t\n", 7),
    ("#KEYHOLE-REQUEST-PORTS 65535\n", 65535),
    ("# KEYHOLE-REQUEST-PORTS 2\n", None),  # a comment, not the directive
    ("echo '#KEYHOLE-REQUEST-PORTS 2'\n", None),
    ("#KEYHOLE-REQUEST-PORTS 2\r\necho x\r\n", 2),  # the store reads CRLF files as LF lines
    ("#KEYHOLE-REQUEST-PORTSX 2\n", "positive integer"),  # the directive misspelt, not a comment
    ("#KEYHOLE-REQUEST-PORTS-2\n", "positive integer"),
    ("#KEYHOLE-REQUEST-PORTS 0\n", "N from 1 to 65535"),
    ("#KEYHOLE-REQUEST-PORTS 65536\n", "N from 1 to 65535"),
    ("#KEYHOLE-REQUEST-PORTS " + "9" * 5000 + "\n", "N from 1 to 65535"),  # beyond int()'s digit limit
    ("#KEYHOLE-REQUEST-PORTS 1\necho\n  #KEYHOLE-REQUEST-PORTS 1\n", r"only once \(lines 1, 3\)"),
]


@pytest.mark.parametrize(("text", "expected"), DIRECTIVE_EDGES)
def test_the_store_and_the_expansion_read_the_directive_alike(
    store: TemplateStore, text: str, expected: int | str | None
) -> None:
    name = write(store, "edge.txt", text)
    common = {"job_id": "j-1", "token": "t" * 32, "session_secret": "s" * 32, "service_urls": ["http://kh:1"]}
    if isinstance(expected, str):
        with pytest.raises(TemplateError, match=expected):
            store.keyhole_request(name)
        with pytest.raises(KeyholeTemplateError, match=expected):
            expand_keyhole_request(text, max_ports=65535, **common)  # type: ignore[arg-type]
        return
    assert store.keyhole_request(name) == expected
    rendered = store.render(name, {})  # what the expansion gets at submission
    assert requested_ports(rendered, max_ports=65535) == expected
    expanded = expand_keyhole_request(rendered, max_ports=65535, **common)  # type: ignore[arg-type]
    assert (expanded == rendered) is (expected is None)


def test_prepare_is_render_keyhole_request_and_session_url_in_one_look() -> None:
    store = TemplateStore(EXAMPLES)
    for name in store.names():
        variables = dict.fromkeys(store.variables(name), "1")
        prepared = store.prepare(name, variables)
        assert prepared == (store.render(name, variables), store.keyhole_request(name), store.session_url(name))
    assert any(store.prepare(n, dict.fromkeys(store.variables(n), "1"))[1] for n in store.names())
