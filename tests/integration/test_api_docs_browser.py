"""An admin on an air-gapped network opens ``/docs`` and ``/redoc`` in a real browser (Debian's chromium).

Every request that leaves the runner's own origin is recorded and refused, as a closed network would; the pages
must still render every operation of the OpenAPI document, and nothing may have been asked of anyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page, Route, async_playwright

from runner.config import ApiSettings
from runner.web.server import ApiServer
from tests.e2e.browser import ARGS, CHROMIUM, need_chromium
from tests.unit.api_support import FakeJobService, make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@dataclass
class Visit:
    page: Page
    origin: str
    own: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(make_app(FakeJobService()), ApiSettings(host="127.0.0.1", port=0)) as started:
        yield started


@pytest.fixture
async def visit(server: ApiServer) -> AsyncIterator[Visit]:
    need_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            seen = Visit(page=page, origin=server.url)

            async def gate(route: Route) -> None:
                url = route.request.url
                parts = urlsplit(url)
                if f"{parts.scheme}://{parts.netloc}" == server.url:
                    seen.own.append(parts.path)
                    await route.continue_()
                elif parts.scheme == "data":
                    await route.continue_()
                else:
                    seen.elsewhere.append(url)
                    await route.abort("blockedbyclient")

            await context.route("**/*", gate)
            yield seen
        finally:
            await browser.close()


async def operations(server: ApiServer) -> set[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        document = (await client.get("/openapi.json")).raise_for_status().json()
    return {(method, path) for path, item in document["paths"].items() for method in item if method in _METHODS}


async def test_swagger_ui_renders_every_operation_from_the_runner_alone(server: ApiServer, visit: Visit) -> None:
    expected = await operations(server)
    await visit.page.goto(f"{server.url}/docs")
    await visit.page.wait_for_function(
        "n => document.querySelectorAll('.opblock').length >= n", arg=len(expected), timeout=30_000, polling=100
    )
    shown = await visit.page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => [
            b.querySelector('.opblock-summary-method').textContent.toLowerCase(),
            b.querySelector('.opblock-summary-path').getAttribute('data-path'),
        ])""",
    )
    assert {tuple(pair) for pair in shown} == expected
    assert visit.elsewhere == []
    assert "/docs/assets/swagger-ui/swagger-ui-bundle.js" in visit.own
    assert "/openapi.json" in visit.own


async def test_redoc_renders_every_operation_from_the_runner_alone(server: ApiServer, visit: Visit) -> None:
    expected = await operations(server)
    await visit.page.goto(f"{server.url}/redoc")
    selector = "[data-section-id^='operation/']"
    await visit.page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[selector, len(expected)],
        timeout=30_000,
        polling=100,
    )
    assert await visit.page.locator(selector).count() == len(expected)
    assert visit.elsewhere == []
    assert "/docs/assets/redoc/redoc.standalone.js" in visit.own
