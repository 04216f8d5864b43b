"""Builders for test events: they go through the real v1 contract, like upstream input does."""

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.domain.contract import LifecycleEvent, parse_event

#: Lets tests use any occurrence time; the future check itself is tested in test_contract.
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def event(
    event_type: str,
    occurred_at: str,
    scope: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    *,
    subject: dict[str, str] | None = None,
    event_id: str | None = None,
    role: str | None = None,
) -> LifecycleEvent:
    document: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": occurred_at,
        "subject": subject or {"ref": "crm:4711"},
        "scope": scope or {},
        "data": data or {},
    }
    if role is not None:
        document["role"] = role
    return parse_event(document, now=FAR_FUTURE)


def utc(text: str) -> datetime:
    """An instant written as ISO-8601; naive text is taken as UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def recipient_body(**changes: Any) -> dict[str, Any]:
    """The body of ``POST /v1/recipients`` for a new processor, with ``changes``."""
    return {
        "recipient_id": f"agent-{uuid.uuid4().hex[:8]}",
        "name": "Inkasso GmbH",
        "kind": "processor",
        "country": "DE",
        "webhook_url": "https://93.184.215.14/gallring",
        "categories": ["collection_case", "aml"],
        **changes,
    }
