"""A request-body cap applied before anything parses the body: larger requests get a JSON 413.

The body is read here, up to the cap, and handed on unchanged. Starlette's own limiter answers in plain text,
not bwVisu's JSON shape, so the API uses this one; the keyhole listener uses it with its own refusal shape.

Before a 413 goes out, the rest of the body is read and dropped (at most :data:`DRAIN_MAX_BYTES`, for at most
:data:`DRAIN_SECONDS`): a server that closes with unread data makes the kernel reset the connection, and a
client that sends its whole body before reading would never see the answer. Past those bounds the answer is
sent at once and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import PayloadTooLarge

logger = logging.getLogger(__name__)

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 30.0


def bwvisu_refusal(max_bytes: int) -> bytes:
    """The REST API's 413 body, in bwVisu's error shape."""
    text = f"request body too large (limit {max_bytes} bytes)"
    return json.dumps({"response": text, "error": PayloadTooLarge.code}, separators=(",", ":")).encode()


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body reach ``app``; ``refusal`` makes the 413 body."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, refusal: Callable[[int], bytes] = bwvisu_refusal, name: str = "api"
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._refusal = refusal
        self._name = name

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
            "%s %s %r -> 413: body of %s bytes over the %d-byte cap",
            self._name,
            scope["method"],
            scope["path"],
            declared if declared is not None else "more than that",
            self.max_bytes,
        )
        if declared is None or declared <= DRAIN_MAX_BYTES:
            await _drain(receive)
        # Closing the connection stops a client that is still sending past the drain bounds.
        response = Response(
            self._refusal(self.max_bytes),
            status_code=413,
            media_type="application/json",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of the request body, within :data:`DRAIN_MAX_BYTES` and :data:`DRAIN_SECONDS`."""
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while dropped <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
