"""The documentation pages and their vendored assets: served by the runner, unchanged, and pointing nowhere else."""

from __future__ import annotations

import hashlib
import re

import pytest

from runner.api.docs import CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.unit.api_support import FakeJobService, client_for, make_app

pytestmark = pytest.mark.unit

_CHECKSUM = re.compile(r"^([0-9a-f]{64})  (\S+)$", re.MULTILINE)


def test_vendored_assets_match_their_recorded_checksums() -> None:
    recorded = {path: digest for digest, path in _CHECKSUM.findall((STATIC_DIR / "ASSETS.md").read_text())}
    present = {str(p.relative_to(STATIC_DIR)) for p in STATIC_DIR.glob("*/*")}
    assert set(recorded) == present
    for path, digest in recorded.items():
        assert hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest() == digest, path
    # Apache-2.0 and MIT: the licence texts travel with the code
    assert {"swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"} <= present


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", ["/docs/assets/swagger-ui/swagger-ui-bundle.js", "/docs/assets/swagger-ui/swagger-ui.css"]),
        ("/redoc", ["/docs/assets/redoc/redoc.standalone.js"]),
    ],
)
async def test_pages_reference_only_the_runners_own_assets(page: str, assets: list[str]) -> None:
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        html = await client.get(page)
        served = [await client.get(asset) for asset in assets]
    assert html.status_code == 200
    assert html.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text) + re.findall(
        r"""url: ?["']([^"']+)["']""", html.text
    )
    assert set(assets) <= set(referenced)
    assert [ref for ref in referenced if "://" in ref or ref.startswith("//")] == []
    assert [r.status_code for r in served] == [200] * len(assets)
    assert all(
        r.content == (STATIC_DIR / a.removeprefix("/docs/assets/")).read_bytes()
        for r, a in zip(served, assets, strict=True)
    )


async def test_unknown_asset_is_a_json_404() -> None:
    async with client_for(make_app(FakeJobService()), auth=False) as client:
        response = await client.get("/docs/assets/swagger-ui/nothing.js")
    assert response.status_code == 404
    assert response.json() == {"response": "not found", "error": "not-found"}
