"""Expansion of ``#KEYHOLE-REQUEST-PORTS N`` into the client heredoc (the run itself: integration tests)."""

from __future__ import annotations

import subprocess

import pytest

from runner.errors import KeyholeTemplateError, TemplateError
from runner.keyhole.script import (
    HEREDOC_DELIMITER,
    client_source,
    expand_keyhole_request,
    keyhole_snippet,
    requested_ports,
)

pytestmark = pytest.mark.unit

TOKEN = "Zm9vYmFyYmF6cXV4LXRva2VuLTEyMzQ1Ng"
SECRET = "c2Vzc2lvbi1zZWNyZXQtZm9y_am9i-MQ"
URLS = ["http://192.0.2.1:4243", "https://192.0.2.2:4243"]
SCRIPT = "#!/bin/bash\n#SBATCH --nodes=1\necho before\n#KEYHOLE-REQUEST-PORTS 2\necho $KEYHOLE_PORT0\n"


def _expand(script: str, **kw: object) -> str:
    options: dict[str, object] = {
        "job_id": "j-1",
        "token": TOKEN,
        "session_secret": SECRET,
        "service_urls": URLS,
        "max_ports": 4,
    }
    options.update(kw)
    return expand_keyhole_request(script, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("script", ["", "#!/bin/bash\necho hi\n", "# KEYHOLE-REQUEST-PORTS 2\n", "echo x"])
def test_scripts_without_the_line_are_untouched(script: str) -> None:
    assert _expand(script) == script


def test_the_line_is_replaced_by_a_quoted_heredoc_running_the_client() -> None:
    out = _expand(SCRIPT)
    assert out.startswith("#!/bin/bash\n#SBATCH --nodes=1\necho before\n# keyhole: request 2 forwarded port(s)")
    assert out.endswith('eval "$KEYHOLE_EXPORTS"\nunset KEYHOLE_EXPORTS\necho $KEYHOLE_PORT0\n')
    assert "#KEYHOLE-REQUEST-PORTS" not in out
    assert f"<<'{HEREDOC_DELIMITER}'\n" in out
    assert f"\n{HEREDOC_DELIMITER}\n" in out
    assert client_source() in out
    assert "|| { echo" in out
    assert "exit 1; }" in out


def test_the_token_and_session_secret_are_only_inside_the_heredoc_body() -> None:
    out = _expand(SCRIPT)
    start = out.index(f"<<'{HEREDOC_DELIMITER}'\n")
    end = out.index(f"\n{HEREDOC_DELIMITER}\n")
    for secret in (TOKEN, SECRET):
        assert out.count(secret) == 1
        assert start < out.index(secret) < end
    assert out[: out.index(TOKEN)].endswith("sys.exit(main(sys.argv[1:], os.environ, '")
    assert f"'{TOKEN}', session_secret='{SECRET}'))\n{HEREDOC_DELIMITER}\n" in out


def test_arguments_are_shell_quoted() -> None:
    out = _expand(SCRIPT, service_urls=["http://192.0.2.1:4243/a?b=1&c=$x"])
    assert "--url 'http://192.0.2.1:4243/a?b=1&c=$x'" in out
    assert "python3 - --job-id j-1 --ports 2 --url" in out


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_expanded_script_is_valid_shell(shell: str) -> None:
    subprocess.run([shell, "-n"], input=_expand(SCRIPT), text=True, check=True, timeout=10)


@pytest.mark.parametrize(
    ("line", "ports"),
    [("#KEYHOLE-REQUEST-PORTS 1", 1), ("  #KEYHOLE-REQUEST-PORTS\t4  ", 4), ("#KEYHOLE-REQUEST-PORTS 03", 3)],
)
def test_requested_ports(line: str, ports: int) -> None:
    assert requested_ports(f"#!/bin/sh\n{line}\n", max_ports=4) == ports


@pytest.mark.parametrize(
    ("script", "match"),
    [
        ("#KEYHOLE-REQUEST-PORTS 1\n#KEYHOLE-REQUEST-PORTS 1\n", r"only once \(lines 1, 2\)"),
        ("#KEYHOLE-REQUEST-PORTS 0\n", "N from 1 to 65535"),
        ("#KEYHOLE-REQUEST-PORTS 5\n", "asks for 5 ports"),
        ("#KEYHOLE-REQUEST-PORTS 99999999999999999999\n", "N from 1 to 65535"),
        ("#KEYHOLE-REQUEST-PORTS\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS -1\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS two\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS 2 3\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS2\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTSX 2\n", "positive integer"),
        ("#KEYHOLE-REQUEST-PORTS 2\r\n", "carriage return"),  # raw CRLF text: the shell would keep the \r
        ("#KEYHOLE-REQUEST-PORTS " + "9" * 5000 + "\n", "N from 1 to 65535"),
    ],
)
def test_bad_directives_are_template_errors(script: str, match: str) -> None:
    with pytest.raises(KeyholeTemplateError, match=match) as info:
        _expand(script)
    assert isinstance(info.value, TemplateError)
    assert info.value.status == 422


@pytest.mark.parametrize(
    "kw",
    [
        {"job_id": "j;rm"},
        {"job_id": ""},
        {"token": "short"},
        {"token": "x" * 20 + "'\n"},
        {"session_secret": "short"},
        {"session_secret": "x" * 20 + "$(id)"},
        {"service_urls": []},
        {"service_urls": ["ftp://x"]},
        {"service_urls": ["http://x y"]},
        {"service_urls": ["http://x'"]},
    ],
)
def test_unsafe_arguments_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"token|secret|job id|URLs") as info:
        _expand(SCRIPT, **kw)
    assert TOKEN not in str(info.value)
    assert str(kw.get("session_secret", SECRET)) not in str(info.value)


def test_snippet_passes_the_retry_bounds_to_the_client() -> None:
    snippet = keyhole_snippet(
        job_id="j",
        token=TOKEN,
        session_secret=SECRET,
        service_urls=URLS[:1],
        ports=1,
        deadline_seconds=30,
        initial_delay=0.05,
    )
    assert "--deadline 30.0 --initial-delay 0.05 <<" in snippet
