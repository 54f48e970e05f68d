"""The keyhole service's own HTTP app: one route, ``POST`` :data:`~runner.keyhole.protocol.REQUEST_PATH`.

Kept apart from the frontend's REST API: jobs reach it from compute nodes without the frontend's
credentials (the per-job HMAC authenticates them), and it is served on its own listener
(``keyholed-servers``). Refusals carry the error's code and public message; anything unexpected is a 500
with a generic text, logged here with its cause.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.errors import RunnerError, TooManyRequests
from runner.keyhole import protocol
from runner.keyhole.service import KeyholeService

log = logging.getLogger(__name__)

JSON = "application/json"


def create_keyhole_app(service: KeyholeService) -> Starlette:
    """The ASGI app serving ``service``."""

    async def forwards(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > protocol.MAX_REQUEST_BYTES:
                error = protocol.MalformedRequest(internal="body too large")
                return Response(protocol.encode_refusal(error), status_code=413, media_type=JSON)
        try:
            answer = await service.handle(body)
        except RunnerError as exc:
            level = logging.WARNING if exc.status < 500 else logging.ERROR
            log.log(level, "keyhole: refused (%s): %s", exc.code, exc)
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
            return Response(protocol.encode_refusal(exc), status_code=exc.status, media_type=JSON, headers=headers)
        except Exception:
            log.exception("keyhole: request failed")
            return Response(protocol.encode_refusal(RunnerError()), status_code=500, media_type=JSON)
        return Response(protocol.encode_forwards(answer), media_type=JSON)

    return Starlette(routes=[Route(protocol.REQUEST_PATH, forwards, methods=["POST"])])
