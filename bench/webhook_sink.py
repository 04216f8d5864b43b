"""A loopback webhook receiver for the notifier benchmark: answers 500 to 1 % of deliveries at
random and 204 to the rest, and does nothing else, so that it costs both contenders alike.

    uvicorn bench.webhook_sink:app
"""

import random
from collections.abc import Awaitable, Callable
from typing import Any

FAILING_SHARE = 0.01


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 500 if scope["method"] == "POST" and random.random() < FAILING_SHARE else 204
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
