"""The API application factory: one FastAPI app per (job service, template store, settings)."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI

from runner import __version__
from runner.api import cluster, jobs
from runner.api import ops as ops_routes
from runner.api import templates as templates_routes
from runner.api.auth import require_frontend
from runner.api.deps import ApiContext
from runner.api.docs import install_docs
from runner.api.errors import install_error_handlers
from runner.api.openapi import install_openapi
from runner.api.ops import Ops
from runner.config import Settings
from runner.service import JobService
from runner.templates import TemplateStore
from runner.web.limits import BodyLimit

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def create_app(
    service: JobService,
    templates: TemplateStore,
    settings: Settings,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    ops: Ops | None = None,
) -> FastAPI:
    """Build the REST API; requests larger than ``max_body_bytes`` are refused (413) before they are parsed.

    With ``ops``, also ``/health``, ``/ready`` (no credentials: probes) and ``/metrics`` (authenticated)."""
    app = FastAPI(
        title="bwVisu runner",
        summary="Job-launching middleware for remote visualisation on Slurm clusters (bwVisu REST API v1)",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,  # served from the runner's own assets by install_docs, never from a CDN
        redoc_url=None,
    )
    app.state.runner = ApiContext(service=service, templates=templates, settings=settings)
    install_error_handlers(app)
    install_openapi(app, templates)
    install_docs(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: nothing parses a body over the cap
    authenticated = [Depends(require_frontend)]
    for router in (jobs.router, cluster.router, templates_routes.router):
        app.include_router(router, dependencies=authenticated)
    if ops is not None:
        app.state.ops = ops
        app.include_router(ops_routes.router)
    if not settings.api.password.get_secret_value():
        logger.warning("api.password is empty: every request will be refused (set RUNNER_API__PASSWORD)")
    return app
