"""An unsubscribe does not wait behind a back-fill: the events the notice promises to act on at
once come in a lane of their own (``gallring.lifecycle-immediate.v1``), which the purger reads
with a consumer of its own. And the two lanes may deliver a subject's events in either order."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from services.purger.handlers import handle_batch
from shared.messaging import topics
from shared.messaging.kafka import make_producer
from shared.runtime.settings import KafkaSettings
from shared.storage.tables.purger import SubjectFact
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import RETENTION, Subject, ago, clocks_of, proofs_of
from tests.integration.purger.running import running_purger
from tests.polling import eventually

BACKLOG = 5_000
FACTS = table_of(SubjectFact)


async def publish(kafka: KafkaSettings, topic: str, messages: list) -> None:
    """All in one partition: on one lane, the last would wait behind every other."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        for message in messages:
            await producer.send(
                topic,
                partition=0,
                key=message.subject.encode(),
                value=message.to_json().encode(),
                headers=[(topics.HEADER_EVENT_TYPE, message.type.encode())],
            )
        await producer.flush()
    finally:
        await producer.stop()


def backlog_applied(db: Engine, backlog: list[Subject]) -> int:
    pseudonyms = [subject.pseudonym for subject in backlog]
    with db.connect() as connection:
        return connection.scalar(
            select(func.count()).where(FACTS.c.subject_pseudonym.in_(pseudonyms))
        )


async def test_an_unsubscribe_is_erased_while_a_backfill_still_waits(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    reader = Subject()  # a newsletter reader Gallring has known for a while
    handle_batch(db, RETENTION, [reader.message("marketing.contact", ago(months=2))], ago(days=1))
    backlog = [Subject() for _ in range(BACKLOG)]
    closed = [
        s.message("collection_case.closed", ago(months=1), {"case_id": "C-1"}) for s in backlog
    ]
    await publish(kafka_settings, topics.LIFECYCLE, closed)
    unsubscribed = reader.message("newsletter.unsubscribed", datetime.now(UTC))
    await publish(kafka_settings, topics.lifecycle_topic(unsubscribed.type), [unsubscribed])

    async with running_purger(migrated_url, kafka_settings):
        await eventually(lambda: proofs_of(db, reader), timeout=60)
        applied_by_then = backlog_applied(db, backlog)
    assert applied_by_then < BACKLOG  # the reader's erasure came before the back-fill's end
    assert clocks_of(db, reader) == {}


async def test_an_unsubscribe_is_erased_before_a_sweep_of_older_due_clocks_ends(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """Clocks are swept in due order, and an unsubscribe's falls due last: the immediate lane
    erases its own subjects' clocks itself instead of waiting for the sweep under way."""
    reader = Subject()
    handle_batch(db, RETENTION, [reader.message("marketing.contact", ago(months=2))], ago(days=1))
    overdue = [Subject() for _ in range(2_000)]
    closed = [
        s.message("collection_case.closed", ago(months=40), {"case_id": "C-1"}) for s in overdue
    ]
    unsubscribed = reader.message("newsletter.unsubscribed", datetime.now(UTC))

    async with running_purger(migrated_url, kafka_settings, purger_sweep_batch_size=2) as purger:
        await eventually(lambda: all(c.joined() for c in purger.consumers), timeout=60)
        handle_batch(db, RETENTION, closed, datetime.now(UTC))  # the next tick sweeps them
        purger.sweep_soon()
        await publish(kafka_settings, topics.lifecycle_topic(unsubscribed.type), [unsubscribed])
        await eventually(lambda: proofs_of(db, reader), timeout=60)
        overdue_left = sum(1 for subject in overdue[-200:] if clocks_of(db, subject))
    assert overdue_left > 0  # the sweep of the older due clocks had not ended


async def test_a_hold_placed_before_an_unsubscribe_holds_however_long_the_backfill(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """The hold is in the immediate lane too: the unsubscribe after it cannot overtake it."""
    reader = Subject()
    handle_batch(db, RETENTION, [reader.message("marketing.contact", ago(months=2))], ago(days=1))
    backlog = [Subject() for _ in range(BACKLOG)]
    closed = [
        s.message("collection_case.closed", ago(months=1), {"case_id": "C-1"}) for s in backlog
    ]
    await publish(kafka_settings, topics.LIFECYCLE, closed)
    held = reader.message("legal_hold.placed", ago(minutes=10), data={"hold_id": "H-1"})
    unsubscribed = reader.message("newsletter.unsubscribed", datetime.now(UTC))
    for message in (held, unsubscribed):
        await publish(kafka_settings, topics.lifecycle_topic(message.type), [message])

    async with running_purger(migrated_url, kafka_settings):
        await eventually(
            lambda: clocks_of(db, reader) != {("marketing", ""): "pending"}, timeout=60
        )
        await asyncio.sleep(1)  # a sweep asked for by the batch has run
    assert clocks_of(db, reader) == {("marketing", ""): "held"}
    assert proofs_of(db, reader) == []


async def test_a_subjects_events_applied_across_the_lanes_in_either_order_erase_alike(
    db: Engine,
) -> None:
    """The unsubscribe first, the contact it ends after (late, from the other lane): the
    contact starts no clock that was already erased, and nothing is kept."""
    reader = Subject()
    contact = reader.message("marketing.contact", ago(months=2))
    unsubscribe = reader.message("newsletter.unsubscribed", ago(minutes=5))
    handle_batch(db, RETENTION, [contact], ago(days=1))
    handle_batch(db, RETENTION, [unsubscribe], datetime.now(UTC))
    erased_first = clocks_of(db, reader)
    other = Subject()
    handle_batch(
        db, RETENTION, [other.message("newsletter.unsubscribed", ago(minutes=5))], ago(minutes=4)
    )
    handle_batch(
        db, RETENTION, [other.message("marketing.contact", ago(months=2))], datetime.now(UTC)
    )
    assert clocks_of(db, other) == erased_first == {("marketing", ""): "erase_now"}
