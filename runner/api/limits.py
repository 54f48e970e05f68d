"""A request-body cap applied before anything parses the body: larger requests get a JSON 413.

The body is read here, up to the cap, and handed on unchanged; a request whose ``Content-Length`` already
exceeds the cap is refused without reading it. Starlette's own limiter answers in plain text, not bwVisu's
JSON shape, so the API uses this one.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body reach ``app``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, declared: int | None) -> None:
        logger.info(
            "api %s %r -> 413: body of %s bytes over the %d-byte cap",
            scope["method"],
            scope["path"],
            declared if declared is not None else "more than that",
            self.max_bytes,
        )
        body = {"response": f"request body too large (limit {self.max_bytes} bytes)", "error": "payload-too-large"}
        # Closing the connection stops a client that is still sending the rest of the body.
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
