"""Which disclosures an erasure reaches, whatever order the topics are read in, and what happens
to a disclosure naming a recipient nobody registered."""

import uuid
from datetime import UTC, datetime, timedelta

from services.api.api_keys import Scope
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.vocabulary import Category
from shared.messaging import topics
from shared.messaging.consumer_loop import HEADER_REASON, HEADER_SOURCE
from shared.messaging.kafka import make_producer
from shared.runtime.settings import KafkaSettings
from tests.integration.conftest import RunningApi
from tests.integration.notifier.helpers import (
    Subject,
    announce_erasure,
    disclose,
    notifications_of,
    register,
)
from tests.integration.notifier.running import running_notifier
from tests.kafka_reading import read_topic
from tests.polling import eventually
from tests.webhook_receiver import HANG, webhook_receiver


async def test_a_disclosure_read_after_its_erasure_is_still_notified(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        subject = Subject()
        await announce_erasure(kafka_settings, subject)
        await disclose(api, subject, vendor, at=datetime.now(UTC) - timedelta(days=30))
        await eventually(lambda: receiver.endpoints[vendor].acted_on)


async def test_scopes_must_overlap_and_the_disclosure_must_come_before_the_erasure(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        subject = Subject()
        await disclose(api, subject, vendor, case_id="C-1", recipient_ref="case-1")
        await disclose(api, subject, vendor, case_id="C-2", recipient_ref="case-2")
        await disclose(api, subject, vendor, case_id=None, recipient_ref="whole-subject")
        await announce_erasure(kafka_settings, subject, scope={"case_id": "C-1"})
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: len(endpoint.acted_on) == 2)
        await disclose(
            api, subject, vendor, case_id="C-1", recipient_ref="after", at=datetime.now(UTC)
        )
        await announce_erasure(kafka_settings, subject, scope={"case_id": "C-2"})
        await eventually(lambda: len(endpoint.acted_on) == 4)
    refs = sorted(
        (payload["data"]["scope"]["case_id"], payload["data"]["recipient_ref"])
        for payload in endpoint.acted_on.values()
    )
    # The subject-wide disclosure overlaps both cases; "after" came after the erasure.
    assert refs == [
        ("C-1", "case-1"),
        ("C-1", "whole-subject"),
        ("C-2", "case-2"),
        ("C-2", "whole-subject"),
    ]


async def test_a_disclosure_to_an_unregistered_recipient_waits_for_its_registration(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        ghost = f"ghost-{uuid.uuid4().hex[:8]}"
        subject = Subject()
        await disclose(api, subject, ghost)
        [flagged] = await eventually(lambda: unregistered(api, ghost))
        assert (flagged["disclosures_kept"], flagged["notifications_waiting"]) == (1, 0)
        await announce_erasure(kafka_settings, subject)
        [waiting] = await eventually(lambda: notifications_of(api, ghost))
        assert (waiting["state"], waiting["attempts"]) == ("pending", 0)
        [flagged] = await unregistered(api, ghost)  # the erasure covered the disclosure
        assert (flagged["disclosures_kept"], flagged["notifications_waiting"]) == (0, 1)

        response = await api.client.post(
            "/v1/recipients",
            json={
                "recipient_id": ghost,
                "name": "Late Registration Ltd",
                "kind": "controller",
                "country": "FI",
                "webhook_url": receiver.url(ghost),
                "categories": ["collection_case"],
            },
            headers=api.key(Scope.ADMIN),
        )
        receiver.endpoints[ghost].secret = response.json()["signing_secret"]
        await eventually(lambda: receiver.endpoints[ghost].acted_on)
        assert await unregistered(api, ghost) == []


async def unregistered(api: RunningApi, recipient_id: str) -> list[dict]:
    """What ``GET /v1/unregistered-recipients`` (scope admin) says of ``recipient_id``."""
    path = "/v1/unregistered-recipients"
    refused = await api.client.get(path, headers=api.key(Scope.ERASURES_READ))
    assert refused.status_code == 403
    found, cursor, admin = [], None, api.key(Scope.ADMIN)
    while True:  # every page: other tests' unregistered recipients share the database
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(path, params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [r for r in page["unregistered_recipients"] if r["recipient_id"] == recipient_id]
        if (cursor := page["next_cursor"]) is None:
            return found


async def test_a_slow_recipient_does_not_hold_up_the_others(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_notifier(
            migrated_url,
            kafka_settings,
            notifier_concurrency=4,
            notifier_recipient_concurrency=2,
            notifier_timeout_seconds=15.0,
        ),
    ):
        slow, quick = await register(api, receiver), await register(api, receiver)
        receiver.endpoints[slow].script = [HANG] * 100
        for _ in range(6):
            subject = Subject()
            await disclose(api, subject, slow)
            await announce_erasure(kafka_settings, subject)
        await eventually(lambda: len(receiver.endpoints[slow].received) >= 2)
        for _ in range(6):
            subject = Subject()
            await disclose(api, subject, quick)
            await announce_erasure(kafka_settings, subject)
        # Well within the slow recipient's 15 s timeout: it holds only its own two slots.
        await eventually(lambda: len(receiver.endpoints[quick].acted_on) == 6, timeout=12)
        assert len(receiver.endpoints[slow].received) == 2


async def test_rectifications_and_restrictions_reach_recipients_of_that_data_the_same_way(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor, marketer = await register(api, receiver), await register(api, receiver)
        subject = Subject()
        await disclose(api, subject, vendor, case_id="C-1", recipient_ref="PV-1")
        await disclose(api, subject, marketer, category="marketing", case_id=None)
        for event_type in ("data.rectified", "processing.restricted"):
            response = await api.client.post(
                "/v1/events",
                json={
                    "event_id": str(uuid.uuid4()),
                    "type": event_type,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "subject": {"ref": subject.ref},
                    "role": "debtor",
                    "scope": {"case_id": "C-1"},
                    "data": {"category": "collection_case"},
                },
                headers=api.key(Scope.EVENTS_WRITE),
            )
            assert response.status_code == 202, response.text
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: len(endpoint.acted_on) == 2)
        # An erasure of the same case still reaches the vendor: a notice ends no disclosure.
        await announce_erasure(kafka_settings, subject, scope={"case_id": "C-1"})
        await eventually(lambda: len(endpoint.acted_on) == 3)
    told = sorted(
        (payload["type"], payload["data"]["legal_basis"][:13], "event_id" in payload["data"])
        for payload in endpoint.acted_on.values()
    )
    assert told == [
        ("erasure.requested", "GDPR art. 17(", False),
        ("rectification.requested", "GDPR art. 19:", True),
        ("restriction.requested", "GDPR art. 19:", True),
    ]
    assert not receiver.endpoints[marketer].received


async def test_an_erasure_message_without_its_subject_key_goes_to_the_dlq_and_the_next_is_read(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    now = datetime.now(UTC)
    poison = (
        ErasureExecuted(
            event_id=uuid.uuid4(),
            erasure_id=uuid.uuid4(),
            category=Category.MARKETING,
            scope={},
            rule="marketing.immediate",
            legal_basis="GDPR art. 21(3)",
            due_at=now,
            executed_at=now,
        )
        .model_dump_json()
        .encode()
    )
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(topics.ERASURES, poison)
    finally:
        await producer.stop()
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        await eventually(lambda: receiver.endpoints[vendor].acted_on)
        records = await read_topic(
            kafka_settings, topics.DEAD_LETTERS, until=lambda rs: any(r.value == poison for r in rs)
        )
    [dead] = [record for record in records if record.value == poison]
    headers = dict(dead.headers)
    assert b"keyed by the subject pseudonym" in headers[HEADER_REASON]
    assert headers[HEADER_SOURCE].startswith(topics.ERASURES.encode())
