"""The notifier's inputs as tests make them: recipients registered through the API, disclosures
posted as v1 events, and erasure-executed messages put on the topic as the purger would."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from services.api.api_keys import Scope
from services.notifier.webhook import signed_headers
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.vocabulary import Category
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.runtime.settings import KafkaSettings
from tests.integration.conftest import SECRET, RunningApi
from tests.webhook_receiver import WebhookReceiver

PSEUDONYMISER = Pseudonymiser(SECRET.encode())


class Subject:
    def __init__(self) -> None:
        self.ref = f"crm:{uuid.uuid4().hex}"
        self.pseudonym = PSEUDONYMISER.pseudonym("ref", self.ref)


async def register(
    api: RunningApi,
    receiver: WebhookReceiver,
    *,
    categories: tuple[str, ...] = ("collection_case",),
    active: bool = True,
    host: str = "127.0.0.1",
) -> str:
    """A new recipient whose webhook is an endpoint of ``receiver``; returns its id."""
    recipient_id = f"vendor-{uuid.uuid4().hex[:8]}"
    response = await api.client.post(
        "/v1/recipients",
        json={
            "recipient_id": recipient_id,
            "name": "Print & Post AB",
            "kind": "processor",
            "country": "SE",
            "webhook_url": receiver.url(recipient_id, host),
            "categories": list(categories),
            "active": active,
        },
        headers=api.key(Scope.ADMIN),
    )
    assert response.status_code == 201, response.text
    receiver.endpoints[recipient_id].secret = response.json()["signing_secret"]
    return recipient_id


async def disclose(
    api: RunningApi,
    subject: Subject,
    recipient_id: str,
    *,
    category: str = "collection_case",
    case_id: str | None = "C-1",
    recipient_ref: str = "PV-1",
    at: datetime | None = None,
) -> None:
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "data.disclosed",
        "occurred_at": (at or datetime.now(UTC) - timedelta(days=400)).isoformat(),
        "subject": {"ref": subject.ref},
        "role": "debtor",
        "scope": {"case_id": case_id} if case_id else {},
        "data": {
            "recipient_id": recipient_id,
            "category": category,
            "recipient_ref": recipient_ref,
        },
    }
    response = await api.client.post("/v1/events", json=event, headers=api.key(Scope.EVENTS_WRITE))
    assert response.status_code == 202, response.text


async def announce_erasure(
    kafka: KafkaSettings,
    subject: Subject,
    *,
    category: str = "collection_case",
    scope: dict[str, str] | None = None,
    erasure_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """An erasure-executed message on ``gallring.erasures.v1``, as the purger publishes it."""
    now = datetime.now(UTC)
    message = ErasureExecuted(
        event_id=uuid.uuid4(),
        erasure_id=erasure_id or uuid.uuid4(),
        category=Category(category),
        scope={"case_id": "C-1"} if scope is None else scope,
        rule=f"{category}.retention",
        legal_basis="GDPR art. 17(1)(a): no longer necessary",
        due_at=now - timedelta(minutes=1),
        executed_at=now,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.ERASURES,
            key=subject.pseudonym.encode(),
            value=message.model_dump_json().encode(),
            headers=[(topics.HEADER_EVENT_TYPE, message.type.encode())],
        )
    finally:
        await producer.stop()
    return message.erasure_id


async def notifications_of(api: RunningApi, recipient_id: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        "/v1/notifications",
        params={"recipient_id": recipient_id},
        headers=api.key(Scope.ERASURES_READ),
    )
    assert response.status_code == 200, response.text
    return response.json()["notifications"]


async def notification(api: RunningApi, notification_id: str) -> dict[str, Any]:
    response = await api.client.get(
        f"/v1/notifications/{notification_id}", headers=api.key(Scope.ERASURES_READ)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def confirm(
    api: RunningApi, notification_id: str, body: str, secret: str, *, tamper: bool = False
) -> httpx.Response:
    """``POST /v1/notifications/{id}/confirm`` as the recipient sends it, signed with its
    ``secret`` (``tamper``: the body changed after signing)."""
    message_id = f"confirm-{uuid.uuid4()}"
    headers = signed_headers(message_id, body, [Webhook(secret)], datetime.now(UTC))
    if tamper:
        body = body.replace("}", ', "extra": 1}')
    return await api.client.post(
        f"/v1/notifications/{notification_id}/confirm", content=body, headers=headers
    )
