"""The demo's recipients' side: one local HTTP server standing in for the print vendor's and
the collection agent's webhook endpoints. It does what a recipient should: verifies each
deletion webhook with the official ``standardwebhooks`` library, acts once per ``webhook-id``,
answers at once, and then confirms the erasure, signed, at the notification's ``confirm_url``.
"""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Told:
    """A verified deletion webhook, and whether Gallring took the confirmation that followed."""

    recipient_id: str
    payload: dict[str, Any]
    confirmed: bool


class VendorEndpoint:
    """Serves ``/hooks/{recipient_id}`` on 127.0.0.1; ``secrets`` are the recipients'
    signing secrets as Gallring gave them at registration."""

    def __init__(self, on_told: Callable[[Told], Awaitable[None]]) -> None:
        self.secrets: dict[str, str] = {}
        self.refused = 0
        self._on_told = on_told
        self._seen: set[str] = set()
        self._confirmations: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    def url(self, recipient_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{recipient_id}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{recipient_id}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self._session = ClientSession(timeout=ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._confirmations:
            await asyncio.wait(self._confirmations, timeout=10)
        for confirmation in list(self._confirmations):  # still waiting on the API: give up
            confirmation.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        recipient_id = request.match_info["recipient_id"]
        body = await request.text()
        secret = self.secrets.get(recipient_id)
        try:
            if secret is None:
                raise WebhookVerificationError("no such recipient here")
            payload = Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        if webhook_id not in self._seen:  # a retry of a webhook already acted on
            self._seen.add(webhook_id)
            confirmation = asyncio.create_task(self._confirm(recipient_id, secret, payload))
            self._confirmations.add(confirmation)
            confirmation.add_done_callback(self._confirmations.discard)
        return web.Response(status=204)

    async def _confirm(self, recipient_id: str, secret: str, payload: dict[str, Any]) -> None:
        """What the vendor does once its copy is gone: tell Gallring, signed with its secret."""
        data = payload["data"]
        body = json.dumps({"notification_id": data["notification_id"]})
        message_id, now = f"confirm-{uuid.uuid4()}", datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body),
        }
        assert self._session is not None
        try:
            async with self._session.post(
                data["confirm_url"], data=body, headers=headers
            ) as answer:
                confirmed = answer.status in (200, 202)
        except (ClientError, TimeoutError):  # the confirm_url does not reach the API
            confirmed = False
        await self._on_told(Told(recipient_id, payload, confirmed))
