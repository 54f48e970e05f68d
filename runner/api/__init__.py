"""The runner's REST API (bwVisu v1, wire-compatible with its web frontend) and its server.

:func:`create_app` builds one FastAPI application from a job service, a template store and settings;
nothing is configured at import time, so several apps can live in one process.
"""

from runner.api.app import create_app

__all__ = ["create_app"]
