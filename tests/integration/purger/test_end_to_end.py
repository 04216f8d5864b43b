"""The purger with the API and a real broker: from a POSTed event to an erasure on Kafka."""

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, text

from services.api.api_keys import Scope
from shared.domain.contract.erasure_messages import ErasureCommand, ErasureExecuted
from shared.domain.contract.examples import EXAMPLES
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.consumer_loop import HEADER_REASON
from shared.messaging.kafka import make_producer
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.conftest import SECRET, RunningApi
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_topic
from tests.polling import eventually

PSEUDONYMS = Pseudonymiser(SECRET.encode())


def closed_case(months_ago: int, subject: dict[str, str]) -> dict:
    occurred_at = datetime.now(UTC) - relativedelta(months=months_ago)
    return {
        **EXAMPLES["collection_case.closed"],
        "event_id": str(uuid.uuid4()),
        "subject": subject,
        "occurred_at": occurred_at.isoformat(),
    }


async def keyed(settings: KafkaSettings, topic: str, key: bytes) -> list[ConsumerRecord]:
    """The records of ``topic`` with this key, once there is one."""
    records = await read_topic(
        settings, topic, until=lambda records: any(r.key == key for r in records)
    )
    return [record for record in records if record.key == key]


def rows_naming(db: Engine, pseudonym: str) -> dict[str, int]:
    """Per table, the rows whose columns or payload mention the pseudonym."""
    found = {}
    with db.connect() as connection:
        for table in (
            "subject_fact",
            "retention_clock",
            "outbox_message",
            "published_message",
            "idempotency_record",
        ):
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()
            found[table] = sum(1 for row in rows if pseudonym in str(tuple(row)))
    return found


async def test_a_case_closed_37_months_ago_is_erased_end_to_end(
    api: RunningApi, kafka_settings
) -> None:
    subject = {"ref": f"crm:{uuid.uuid4().hex}"}
    pseudonym = PSEUDONYMS.pseudonym("ref", subject["ref"])
    response = await api.client.post(
        "/v1/events", json=closed_case(37, subject), headers=api.key(Scope.EVENTS_WRITE)
    )
    assert response.status_code == 202

    async with running_purger(api.settings.database_url, kafka_settings):
        [command] = await keyed(kafka_settings, topics.ERASURE_COMMANDS, pseudonym.encode())
        [executed] = await keyed(kafka_settings, topics.ERASURES, pseudonym.encode())
        db = make_engine(api.settings.database_url)
        try:
            # Until the relay has published the erasure's messages and pruned its copies (kept
            # a second here, an hour by default, for a broker that loses them).
            def relayed_and_pruned() -> bool:
                rows = rows_naming(db, pseudonym)
                return not any(rows[t] for t in ("outbox_message", "published_message"))

            await eventually(relayed_and_pruned, timeout=10, interval=0.1)
            assert rows_naming(db, pseudonym) == {
                "subject_fact": 0,
                "retention_clock": 0,
                "outbox_message": 0,
                "published_message": 0,
                "idempotency_record": 0,
            }
        finally:
            db.dispose()

    erasure = ErasureCommand.model_validate_json(command.value)
    assert ErasureExecuted.model_validate_json(executed.value).erasure_id == erasure.erasure_id
    assert (erasure.category, erasure.scope) == ("collection_case", {"case_id": "C-2023-0001"})
    assert dict(command.headers)["event-type"] == b"erasure.command"


async def test_an_unsubscribe_is_erased_at_once_not_at_the_next_sweep_tick(
    api: RunningApi, kafka_settings
) -> None:
    subject = {"ref": f"crm:{uuid.uuid4().hex}"}
    pseudonym = PSEUDONYMS.pseudonym("ref", subject["ref"])
    unsubscribe = {
        **EXAMPLES["newsletter.unsubscribed"],
        "event_id": str(uuid.uuid4()),
        "subject": subject,
        "occurred_at": datetime.now(UTC).isoformat(),
    }

    async with running_purger(
        api.settings.database_url, kafka_settings, purger_sweep_interval_seconds=3600
    ) as purger:
        sweeps = "gallring_purger_sweep_duration_seconds_count"
        # The sweep at start; the next tick is an hour away.
        await eventually(lambda: purger.metrics.registry.get_sample_value(sweeps), timeout=10)
        response = await api.client.post(
            "/v1/events", json=unsubscribe, headers=api.key(Scope.EVENTS_WRITE)
        )
        assert response.status_code == 202
        async with asyncio.timeout(60):  # reading the session's topic first: not an hour
            [executed] = await keyed(kafka_settings, topics.ERASURES, pseudonym.encode())

    erasure = ErasureExecuted.model_validate_json(executed.value)
    assert (erasure.category, erasure.rule) == ("marketing", "marketing.immediate")

    # What is left of the subject: no clock, and the proof, found through its pseudonym's hash,
    # for a key that may read erasures.
    headers = api.key(Scope.SUBJECTS_READ, Scope.ERASURES_READ)
    response = await api.client.post("/v1/subjects/lookup", json=subject, headers=headers)
    assert response.json()["clocks"] == []
    assert [(e["erasure_id"], e["rule"], e["state"]) for e in response.json()["erasures"]] == [
        (str(erasure.erasure_id), "marketing.immediate", "executed")
    ]
    headers = api.key(Scope.SUBJECTS_READ)
    response = await api.client.post("/v1/subjects/lookup", json=subject, headers=headers)
    assert response.json()["erasures"] is None


async def test_a_poison_message_goes_to_the_dlq_and_the_next_one_is_applied(
    api: RunningApi, kafka_settings
) -> None:
    subject = {"ref": f"crm:{uuid.uuid4().hex}"}
    poison_key = uuid.uuid4().hex.encode()
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(topics.LIFECYCLE, b'{"not": "an event"}', key=poison_key)
    finally:
        await producer.stop()
    response = await api.client.post(
        "/v1/events", json=closed_case(1, subject), headers=api.key(Scope.EVENTS_WRITE)
    )
    assert response.status_code == 202

    reader = api.key(Scope.SUBJECTS_READ)
    async with running_purger(api.settings.database_url, kafka_settings) as purger:
        [poison] = await keyed(kafka_settings, topics.DEAD_LETTERS, poison_key)

        async def clocks_stored() -> dict | None:
            response = await api.client.post("/v1/subjects/lookup", json=subject, headers=reader)
            body = response.json()
            return body if body.get("clocks") else None

        body = await eventually(clocks_stored, timeout=30, interval=0.2)

        dead_letters = purger.metrics.registry.get_sample_value(
            "gallring_purger_dead_letters_total"
        )

    assert dead_letters is not None and dead_letters >= 1  # the session's tests share the topic
    assert poison.value == b'{"not": "an event"}'
    reason = dict(poison.headers)[HEADER_REASON].decode()
    assert "event_id" in reason and "an event" not in reason  # names fields, echoes nothing
    assert [clock["state"] for clock in body["clocks"]] == ["pending"]
    assert body["erasures"] is None  # a key that may not read erasures
