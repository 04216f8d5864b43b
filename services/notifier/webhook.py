"""What a recipient receives: the JSON body of a notification and its Standard Webhooks
signature headers, verifiable with the official ``standardwebhooks`` libraries.

``webhook-id`` is the notification id, the same on every retry, so a receiver that dedupes by
it acts on each notification once however often it arrives.
"""

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from standardwebhooks import Webhook


def notification_body(
    *,
    notification_type: str,
    notification_id: UUID,
    erasure_id: UUID | None,
    event_id: UUID | None,
    category: str,
    scope: dict[str, str],
    recipient_ref: str,
    legal_basis: str,
    respond_by: datetime,
    public_api_url: str,
    now: datetime,
) -> str:
    """The Standard Webhooks payload shape: ``type``, ``timestamp`` and ``data``. An erasure
    names its ``erasure_id``; a rectification or restriction the ``event_id`` it came from."""
    data: dict[str, Any] = {"notification_id": str(notification_id)}
    if erasure_id is not None:
        data["erasure_id"] = str(erasure_id)
    if event_id is not None:
        data["event_id"] = str(event_id)
    data |= {
        "category": category,
        "scope": scope,
        "recipient_ref": recipient_ref,
        "legal_basis": legal_basis,
        "respond_by": respond_by.isoformat(),
        "confirm_url": f"{public_api_url.rstrip('/')}/v1/notifications/{notification_id}/confirm",
    }
    return json.dumps(
        {"type": notification_type, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
    )


def signed_headers(
    webhook_id: str, body: str, signers: list[Webhook], now: datetime
) -> dict[str, str]:
    """One ``v1,…`` signature per secret (two during a rotation's grace period)."""
    signatures = " ".join(signer.sign(webhook_id, now, body) for signer in signers)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
