"""A user's browser on the public network: Debian's chromium driven by Playwright (never a downloaded browser).

The host reaches the testbed's public network directly, so a browser started here is a user on the internet.
:func:`open_xpra` opens a URL of Xpra's HTML5 client and reports where it ended up: in the session (the
``--start-child`` xterm's window is drawn) or on the client's connect page with the reason it was sent back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
# Headless on a closed network: without the background-networking flags chromium floods it with lookups.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Xpra 3.1's HTML5 client draws each window as a div.window with the application's WM class; the template's
# xterm is XTerm (Debian's Xsession also opens a UXTerm, which this does not match).
IN_SESSION = "div.window.wmclass-XTerm canvas"
TITLE = "div.window.wmclass-XTerm span.windowtitle"
SENT_BACK = "connect.html"


@dataclass(frozen=True)
class Visit:
    """Where the browser ended up."""

    final_url: str
    in_session: bool
    window_title: str | None
    disconnect_reason: str | None
    screenshot: Path


def need_chromium() -> None:
    """Chromium is there, or the test fails in CI and is skipped elsewhere (bootstrap installs it with Docker)."""
    if shutil.which("chromium") or Path(CHROMIUM).exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("the connect-path tests need Debian's chromium in CI (scripts/bootstrap installs it)")
    pytest.skip("Debian's chromium is not installed (BWVISU_DOCKER=1 scripts/bootstrap installs it)")


async def open_xpra(url: str, screenshot: Path, timeout_ms: int = 20_000) -> Visit:
    """Open ``url`` in a fresh headless chromium; wait until the session is drawn or the client gives up."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(url)
            with contextlib.suppress(PlaywrightTimeout):  # then reported as neither in the session nor sent back
                await page.wait_for_function(
                    "([sel, back]) => !!document.querySelector(sel) || location.pathname.endsWith('/' + back)",
                    arg=[IN_SESSION, SENT_BACK],
                    timeout=timeout_ms,
                    polling=100,
                )
            windows = page.locator(IN_SESSION)
            in_session = await windows.count() > 0 and await windows.first.is_visible()
            title = None
            if in_session:
                with contextlib.suppress(PlaywrightTimeout):  # the shell in the xterm names it "user@host: dir"
                    await page.wait_for_function(
                        "sel => (document.querySelector(sel)?.textContent || '').includes('@')",
                        arg=TITLE,
                        timeout=15_000,
                        polling=100,
                    )
                title = await page.inner_text(TITLE)
            reason = None
            if SENT_BACK in page.url:
                with contextlib.suppress(PlaywrightTimeout):  # the connect page fills in why a moment after loading
                    await page.wait_for_function(
                        "() => (document.querySelector('#disconnect-reason')?.textContent || '').trim() !== ''",
                        timeout=10_000,
                        polling=100,
                    )
                reason = (await page.inner_text("#disconnect-reason")).strip()
            await page.screenshot(path=str(screenshot))
            return Visit(page.url, in_session, title, reason, screenshot)
        finally:
            await browser.close()
