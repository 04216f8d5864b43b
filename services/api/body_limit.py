"""Refuses request bodies over a size limit before reading them whole (413, problem+json)."""

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.problems import PROBLEM_JSON
from services.api.route_path import route_path


class BodyLimitMiddleware:
    """``limit_for(path)`` gives the byte limit for a request path (as its route sees it)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(route_path(scope))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _refuse(scope, send, limit)
            else:  # the server reads no more than the declared length: nothing to count
                await self.app(scope, receive, send)
            return

        # No declared length (a chunked upload): the body is read here, up to the limit, and
        # handed on whole. Were the excess found while a route reads it, FastAPI's own body
        # parsing would answer 400 instead of 413.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _refuse(scope, send, limit)
                return
            if not message.get("more_body", False):
                break
        first: Message | None = {"type": "http.request", "body": bytes(body), "more_body": False}

        async def replaying_receive() -> Message:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()

        await self.app(scope, replaying_receive, send)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "urn:gallring:problem:body-too-large",
            "title": "The request body is too large",
            "status": 413,
            "detail": f"Send at most {limit} bytes per request; split large uploads into batches.",
            "instance": scope["path"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
