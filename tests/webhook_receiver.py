"""A recipient's webhook endpoint for tests: a real HTTP server on loopback that verifies every
request with the official ``standardwebhooks`` library, acts once per ``webhook-id``, and answers
as a script tells it (500s, 429 with Retry-After, hanging, or down altogether)."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.messaging.embedded_broker import free_loopback_port

HANG = "hang"  # a scripted answer: never answer (the sender's timeout ends it)


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    """One recipient's path on the receiver."""

    secret: str = ""
    script: list[int | tuple[int, dict[str, str]] | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    acted_on: dict[str, dict[str, Any]] = field(default_factory=dict)  # webhook-id -> payload
    rejected: int = 0


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_loopback_port()
        self.endpoints: dict[str, Endpoint] = {}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        self.endpoints.setdefault(name, Endpoint())
        return f"http://{host}:{self.port}/hooks/{name}"

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hooks/{name}", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Down: connections are refused until :meth:`start`."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # hanging requests must not hold the port
            await self._task
            self._server = self._task = None

    async def _receive(self, request: Request) -> Response:
        endpoint = self.endpoints[request.path_params["name"]]
        body = await request.body()
        headers = dict(request.headers)
        endpoint.received.append(Received(headers.get("webhook-id", ""), headers, body))
        try:
            payload = Webhook(endpoint.secret).verify(body, headers)
        except WebhookVerificationError:
            endpoint.rejected += 1
            return Response(status_code=401)
        answer = endpoint.script.pop(0) if endpoint.script else 200
        if answer == HANG:
            await asyncio.sleep(3600)
        status, answer_headers = answer if isinstance(answer, tuple) else (answer, {})
        assert isinstance(status, int)
        if 200 <= status < 300:
            endpoint.acted_on.setdefault(headers["webhook-id"], payload)  # dedupe by id
        return Response(json.dumps({"ok": status < 300}), status, answer_headers)


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
