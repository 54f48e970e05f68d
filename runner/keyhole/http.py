"""The keyhole service's own HTTP app: one route, ``POST`` :data:`~runner.keyhole.protocol.REQUEST_PATH`.

Kept apart from the frontend's REST API: jobs reach it from compute nodes without the frontend's
credentials (the per-job HMAC authenticates them), and it is served on its own listener
(``keyholed-servers``). Bodies over :data:`~runner.keyhole.protocol.MAX_REQUEST_BYTES` get a 413 before anything
parses them, intact also for clients that send everything first (:class:`runner.web.limits.BodyLimit`).
Refusals carry the error's code and public message; anything unexpected is a 500
with a generic text, logged here with its cause.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.errors import RunnerError, TooManyRequests
from runner.keyhole import protocol
from runner.keyhole.service import KeyholeService
from runner.web.limits import BodyLimit

log = logging.getLogger(__name__)

JSON = "application/json"
ROUTE = f"POST {protocol.REQUEST_PATH}"
"""The endpoint's one route, as :data:`runner.errors.ROUTES` names it."""


def create_keyhole_app(service: KeyholeService) -> Starlette:
    """The ASGI app serving ``service``."""

    async def forwards(request: Request) -> Response:
        body = await request.body()  # at most MAX_REQUEST_BYTES: BodyLimit refused anything larger
        try:
            answer = await service.handle(body)
        except RunnerError as exc:
            level = logging.WARNING if exc.status < 500 else logging.ERROR
            log.log(level, "keyhole: refused (%s): %s", exc.code, exc, extra={"route": ROUTE, "code": exc.code})
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
            return Response(protocol.encode_refusal(exc), status_code=exc.status, media_type=JSON, headers=headers)
        except Exception:
            log.exception("keyhole: request failed", extra={"route": ROUTE, "code": RunnerError.code})
            return Response(protocol.encode_refusal(RunnerError()), status_code=500, media_type=JSON)
        return Response(protocol.encode_forwards(answer), media_type=JSON)

    limit = Middleware(
        BodyLimit, max_bytes=protocol.MAX_REQUEST_BYTES, refusal=protocol.too_large_refusal, name="keyhole"
    )
    return Starlette(routes=[Route(protocol.REQUEST_PATH, forwards, methods=["POST"])], middleware=[limit])
