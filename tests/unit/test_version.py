"""The runner's version: the installed distribution's, in ``--version`` and the OpenAPI document."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from runner import __version__
from runner.__main__ import _parser
from tests.unit.api_support import FakeJobService, client_for, make_app

pytestmark = pytest.mark.unit


def test_version_is_the_distributions() -> None:
    assert __version__ == version("bwvisu-runner")


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bwvisu-runner {__version__}"


async def test_openapi_names_the_version_and_the_api() -> None:
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        info = (await client.get("/openapi.json")).json()["info"]
    assert info["version"] == __version__
    assert "v1" in info["summary"]
