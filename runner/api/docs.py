"""The API's documentation pages, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served by the runner itself.

An admin network is often air-gapped, so nothing is loaded from a CDN: the pages load their scripts and styles
from :data:`ASSETS_PATH` under the runner's own ``/docs/assets/``. The assets are upstream's own builds, vendored
unchanged with their licences from npm (``swagger-ui-dist`` by SmartBear, ``redoc`` by Redocly; the versions and
checksums are in ``static/ASSETS.md``). No page asks a third party for anything: no favicon from elsewhere, no
web fonts, no online validator; and a Content-Security-Policy keeps the browser from trying anyway (ReDoc's
sidebar always shows its vendor's logo from a CDN, which the policy turns into a request never sent).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
# A tab icon that costs no request at all (browsers would otherwise ask the runner for /favicon.ico).
_NO_FAVICON = "data:,"
# Both pages run an inline start-up script and inline styles; ReDoc renders in a worker made from a blob.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
_SWAGGER_PARAMETERS = {
    **swagger_ui_default_parameters,
    "validatorUrl": None,  # Swagger UI would otherwise send the document to an online validator
    "tryItOutEnabled": False,
    "persistAuthorization": False,
}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI), ``/redoc`` (ReDoc) and their assets; ``app.openapi_url`` must be set."""
    openapi_url = app.openapi_url
    assert openapi_url is not None
    title = app.title
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR, check_dir=True), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _own_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_PATH}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=_NO_FAVICON,
                swagger_ui_parameters=_SWAGGER_PARAMETERS,
            )
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _own_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{ASSETS_PATH}/redoc/redoc.standalone.js",
                redoc_favicon_url=_NO_FAVICON,
                with_google_fonts=False,
            )
        )


def _own_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
