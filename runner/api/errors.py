"""One place that turns every failure into bwVisu's JSON shape: ``{"response": <public message>, "error": <code>}``.

:class:`~runner.errors.RunnerError` answers with its own status and public message (its internal message is
only logged); request validation answers 422 naming each field and rule; HTTP errors keep their status; anything
unexpected is logged with its traceback and answered 500 ``internal error`` without details.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.api.auth import REALM
from runner.errors import BadRequest, MethodNotAllowed, NotFound, RunnerError, Unauthorized

logger = logging.getLogger(__name__)

_FIELD_CODES = {"uid": "invalid-user", "template-name": "invalid-template-name", "variables": "invalid-variable"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_CODES = {NotFound.status: NotFound.code, MethodNotAllowed.status: MethodNotAllowed.code}


def error_body(public: str, code: str) -> dict[str, str]:
    return {"response": public, "error": code}


def _json(status: int, public: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": f'Basic realm="{REALM}"'}
    return JSONResponse(error_body(public, code), status_code=status, headers=headers)


def _where(request: Request) -> str:
    return f"{request.method} {request.url.path!r}"


def route_of(scope: Scope) -> str | None:
    """``METHOD /path`` as the matched route declares it (the key of :data:`runner.errors.ROUTES`), if one matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return f"{scope.get('method')} {path}" if isinstance(path, str) else None


def _answered(request: Request, code: str) -> dict[str, str | None]:
    """What an error answer's log line carries besides its text: the route and the code (for log processors)."""
    return {"route": route_of(request.scope), "code": code}


async def _runner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RunnerError)
    level = logging.WARNING if exc.status >= 500 else logging.INFO
    logger.log(
        level, "api %s -> %d %s: %s", _where(request), exc.status, exc.code, exc, extra=_answered(request, exc.code)
    )
    return _json(exc.status, exc.public, exc.code)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) if str(p).isprintable() else repr(p) for p in loc[1:] if p != "[key]"]
    return ".".join(parts) or "body"


def _problem(error: Any) -> str:
    if error.get("type") == "json_invalid":
        return f"body: malformed JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})"
    return f"{_field(error.get('loc', ()))}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    public = "; ".join(_problem(e) for e in errors) or "invalid request"
    first: Sequence[Any] = errors[0].get("loc", ()) if errors else ()
    code = _FIELD_CODES.get(str(first[1]) if len(first) > 1 else "", BadRequest.code)
    logger.info("api %s -> 422 %s: %s", _where(request), code, public, extra=_answered(request, code))
    return _json(422, public, code)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI answers 400 for bodies it cannot decode at all (e.g. invalid UTF-8).
        public, status, code = "body: malformed JSON (cannot be decoded)", 422, BadRequest.code
    elif exc.status_code == 401:
        # FastAPI's HTTPBasic refuses malformed Authorization headers itself.
        public, status, code = Unauthorized.default_public, 401, Unauthorized.code
    else:
        public, status = str(exc.detail).lower(), exc.status_code
        code = _HTTP_CODES.get(status, "http-error")
    headers = dict(exc.headers or {})
    if status == MethodNotAllowed.status:
        # Starlette names only the first route at the path; the answer must list every method the path has.
        headers["Allow"] = _allowed_methods(request)
    logger.info("api %s -> %d %s: %s", _where(request), status, code, exc.detail, extra=_answered(request, code))
    return _json(status, public, code, headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path (a mount serves only files: GET and HEAD).

    Each method is tried against the routes as the router would (included routers answer for their own routes).
    """
    # a mount's app sees its own root_path; the app's routes match against the app's
    scope = {**request.scope, "root_path": request.scope.get("app_root_path", request.scope.get("root_path", ""))}
    allowed: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Mount):
            if route.matches(scope)[0] is not Match.NONE:
                allowed |= {"GET", "HEAD"}
            continue
        allowed |= {m for m in _METHODS if route.matches({**scope, "method": m})[0] is Match.FULL}
    return ", ".join(sorted(allowed))


class CatchUnexpected:
    """ASGI middleware: an exception no handler claimed becomes a logged 500 with no details in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception(
                "api %s %r -> 500: unexpected error",
                scope.get("method"),
                scope.get("path"),
                extra={"route": route_of(scope), "code": RunnerError.code},
            )
            if started:
                raise
            await _json(500, RunnerError.default_public, RunnerError.code)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RunnerError, _runner_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(CatchUnexpected)
