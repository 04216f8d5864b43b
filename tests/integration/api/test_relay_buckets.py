"""Relays sharing the publishing (``GALLRING_RELAY_SHARDED``, PostgreSQL): they split the
outbox's buckets between them, take over a dead one's, never publish beside a relay that does not
share, and each subject's messages still arrive once and in order."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text

from services.api.api_keys import Principal, Scope
from services.api.events import service
from services.api.metrics import ApiMetrics
from shared.domain.contract import parse_event
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.messaging.outbox import OutboxRelay
from shared.messaging.outbox.bucket_lease import (
    BUCKET_LOCK_CLASS,
    REBALANCE_SECONDS,
    BucketLeases,
)
from shared.messaging.outbox.lease import PublishingLease
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.storage.tables.outbox import BUCKETS, OutboxMessage, RelayLease
from shared.storage.tables.table import table_of
from tests.conftest import new_postgres_database
from tests.integration.api.test_relay import (
    assert_each_subjects_events_once_in_order,
    contacts,
)
from tests.integration.conftest import SECRET, crash, relay_settings
from tests.kafka_reading import event_id_of, read_topic
from tests.polling import eventually

ALL = frozenset(range(BUCKETS))
_LEASE = table_of(RelayLease)
_OUTBOX = table_of(OutboxMessage)
LEASE_SECONDS = 15.0


def end_the_session_of(engine: Engine, leases: BucketLeases) -> None:
    """End the database session holding a relay's bucket leases, from another session."""
    with engine.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = "
                "'advisory' AND objsubid = 2 AND classid = :class GROUP BY pid "
                "HAVING array_agg(objid::bigint ORDER BY objid) = CAST(:held AS bigint[])"
            ),
            {"class": BUCKET_LOCK_CLASS, "held": sorted(leases.held)},
        ).all()
    assert ended == [(True,)]


def share_between(first: BucketLeases, second: BucketLeases) -> None:
    """The first takes every bucket, then hands half on to the second."""
    first.hold(now=0.0)
    second.hold(now=0.0)  # none free yet
    first.hold(now=0.0)
    second.hold(now=REBALANCE_SECONDS)
    assert len(first.held) == len(second.held) == BUCKETS // 2


@pytest.fixture
def postgres_db() -> Iterator[Engine]:
    """A database of its own: the relays count the sharing relays of their database."""
    with new_postgres_database() as url:
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_sharing_relays_split_the_buckets_and_take_a_leavers_share(postgres_db) -> None:
    first, second = (
        BucketLeases(postgres_db, "first", LEASE_SECONDS),
        BucketLeases(postgres_db, "second", LEASE_SECONDS),
    )
    later = iter(range(0, 1000, 2))  # monotonic times, past each look's pause
    try:
        assert first.hold(now=next(later)) == ALL  # alone: every bucket
        assert second.hold(now=next(later)) == frozenset()  # none free yet
        held_by_first = first.hold(now=next(later))  # two relays now: it hands half on
        assert len(held_by_first) == BUCKETS // 2
        held_by_second = second.hold(now=next(later))
        assert held_by_second == ALL - held_by_first
        # Stable while both live: nothing moves.
        assert first.hold(now=next(later)) == held_by_first
        assert second.hold(now=next(later)) == held_by_second
        second.release()
        assert first.hold(now=next(later)) == ALL  # the leaver's share, taken at once
    finally:
        first.release()
        second.release()


def test_a_relay_looks_for_free_buckets_at_most_once_a_rebalance_pause(postgres_db) -> None:
    first, second = (
        BucketLeases(postgres_db, "first", LEASE_SECONDS),
        BucketLeases(postgres_db, "second", LEASE_SECONDS),
    )
    try:
        first.hold(now=0.0)
        second.hold(now=0.0)  # looked: none free
        first.hold(now=0.0)  # hands half on
        assert second.hold(now=REBALANCE_SECONDS / 2) == frozenset()  # not looked again yet
        assert len(second.hold(now=REBALANCE_SECONDS)) == BUCKETS // 2
    finally:
        first.release()
        second.release()


def test_sharing_relays_and_a_single_lease_never_publish_at_once(postgres_db) -> None:
    sharing = BucketLeases(postgres_db, "sharing", LEASE_SECONDS)
    single = PublishingLease(postgres_db, "single", lease_seconds=15.0)
    try:
        assert sharing.hold(now=0.0) == ALL
        assert not single.hold()
        sharing.release()
        assert single.hold()
        assert sharing.hold(now=10.0) == frozenset()
        single.release()
        assert sharing.hold(now=20.0) == ALL
    finally:
        sharing.release()
        single.release()


async def test_a_sharing_relay_whose_session_ended_holds_nothing_and_its_buckets_go(
    postgres_db,
) -> None:
    doomed = BucketLeases(postgres_db, "doomed", LEASE_SECONDS)
    survivor = BucketLeases(postgres_db, "survivor", LEASE_SECONDS)
    try:
        share_between(doomed, survivor)
        assert doomed.held and survivor.held
        end_the_session_of(postgres_db, doomed)  # as a killed process's, or an administrator's
        assert doomed.hold(now=4.0) == frozenset()  # it finds out
        clock = iter(range(6, 10_000, 2))
        await eventually(lambda: survivor.hold(now=next(clock)) == ALL, timeout=10)
    finally:
        doomed.release()
        survivor.release()


def test_the_holder_of_the_first_bucket_names_itself_in_the_lease_row(postgres_db) -> None:
    """Relays of a release before sharing go by the row: it must name a live holder."""
    first = BucketLeases(postgres_db, "first", LEASE_SECONDS)
    second = BucketLeases(postgres_db, "second", LEASE_SECONDS)
    try:
        share_between(first, second)
        holder = "first" if 0 in first.held else "second"
        name, expires = lease_row(postgres_db)
        assert name == holder and expires > datetime.now(UTC)
        first.release()
        second.release()
        assert lease_row(postgres_db)[1] <= datetime.now(UTC)  # ended with its holder
    finally:
        first.release()
        second.release()


def lease_row(engine: Engine) -> tuple[str, datetime]:
    with engine.connect() as connection:
        row = connection.execute(select(_LEASE.c.holder, _LEASE.c.expires_at)).one()
    return row.holder, row.expires_at


async def test_a_backlog_in_one_bucket_fills_each_round(postgres_db, kafka_settings) -> None:
    """Every bucket gets its share of a round, and a bucket with more gets the rest."""
    relay = OutboxRelay(
        postgres_db,
        kafka_settings,
        relay_settings(sharded=True, batch_size=100),
        ApiMetrics().outbox,
        holder="alone",
    )
    store(postgres_db, contacts([f"crm:{uuid.uuid4().hex[:8]}"], 250))  # one key, one bucket
    try:
        assert [await relay.publish_once() for _ in range(4)] == [100, 100, 50, 0]
    finally:
        await relay.close()


def store(engine: Engine, events: list[dict]) -> None:
    """Accept ``events`` as the API does: into the outbox, in one transaction."""
    actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
    pseudonymiser = Pseudonymiser(SECRET.encode())
    intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in events]
    service.accept(engine, intakes, now=datetime.now(UTC))


async def test_relays_joining_and_leaving_during_a_backlog_keep_each_subjects_order(
    postgres_db, kafka_settings
) -> None:
    settings = relay_settings(sharded=True, batch_size=40)
    first, second = (
        OutboxRelay(postgres_db, kafka_settings, settings, ApiMetrics().outbox, holder=name)
        for name in ("first", "second")
    )
    events = contacts([f"crm:{uuid.uuid4().hex[:8]}" for _ in range(30)], 3_000)
    for start in range(0, len(events), 500):
        store(postgres_db, events[start : start + 500])
    running = [asyncio.create_task(first.run())]
    try:
        await eventually(lambda: backlog(postgres_db) < 2_500)  # the first relay alone
        running.append(asyncio.create_task(second.run()))  # joins: takes half the buckets
        await eventually(lambda: bool(second._buckets and second._buckets.held))
        await eventually(lambda: backlog(postgres_db) < 1_000)
        first.stop()  # leaves: the second takes its buckets
        await running[0]
        assert backlog(postgres_db) > 0
        await eventually(lambda: backlog(postgres_db) == 0, timeout=60)
        wanted = {e["event_id"] for e in events}
        records = await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda rs: wanted <= {event_id_of(r) for r in rs},
        )
        assert_each_subjects_events_once_in_order(records, events)
    finally:
        first.stop()
        second.stop()
        await asyncio.gather(*running, return_exceptions=True)


def backlog(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(_OUTBOX)).scalar_one()


async def test_two_sharing_relays_publish_each_subjects_events_once_and_in_order(
    postgres_db, kafka_settings
) -> None:
    engine = postgres_db
    pseudonymiser = Pseudonymiser(SECRET.encode())
    settings = relay_settings(sharded=True, batch_size=64)
    metrics = [ApiMetrics() for _ in (1, 2)]
    relays = [
        OutboxRelay(engine, kafka_settings, settings, m.outbox, holder=f"relay-{n}")
        for n, m in enumerate(metrics, start=1)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]

    def buckets_of(n: int) -> float:
        held = metrics[n].registry.get_sample_value("gallring_outbox_relay_buckets")
        return held or 0.0

    try:
        await eventually(lambda: buckets_of(0) + buckets_of(1) == BUCKETS, timeout=10)
        await eventually(lambda: buckets_of(0) and buckets_of(1), timeout=10)
        subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(40)]
        events = contacts(subjects, 1_200)
        actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
        for start in range(0, len(events), 100):
            chunk = events[start : start + 100]
            intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in chunk]
            service.accept(engine, intakes, now=datetime.now(UTC))
        wanted = {e["event_id"] for e in events}
        records = await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda rs: wanted <= {event_id_of(r) for r in rs},
        )
        assert_each_subjects_events_once_in_order(records, events)
        counts = [
            m.registry.get_sample_value(
                "gallring_outbox_published_total", {"topic": topics.LIFECYCLE}
            )
            for m in metrics
        ]
        assert all(counts)  # both relays published their share
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(buckets_of(n) == 0 for n in (0, 1))  # handed on when they stopped


async def test_what_a_broker_forgets_is_published_again_by_sharing_relays(
    postgres_db, kafka_settings
) -> None:
    """Both relays see the loss; the kept messages go back into the outbox once, and each
    subject's arrive again in order."""
    broker = EmbeddedBroker()
    broker.start()
    kafka = kafka_settings.model_copy(update={"bootstrap": broker.bootstrap_servers})
    pseudonymiser = Pseudonymiser(SECRET.encode())
    settings = relay_settings(sharded=True, keep_published_seconds=300, batch_size=64)
    relays = [
        OutboxRelay(postgres_db, kafka, settings, ApiMetrics().outbox, holder=f"relay-{n}")
        for n in (1, 2)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: all(relay._buckets and relay._buckets.held for relay in relays))
        subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(20)]
        events = contacts(subjects, 400)
        actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
        intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in events]
        service.accept(postgres_db, intakes, now=datetime.now(UTC))
        wanted = {e["event_id"] for e in events}
        await read_topic(
            kafka, topics.LIFECYCLE, until=lambda rs: wanted <= {event_id_of(r) for r in rs}
        )
        # Both relays published some (their shares of the keys): both see the loss.
        await eventually(lambda: all(relay._acknowledged for relay in relays))

        crash(broker)  # the broker keeps nothing: what it acknowledged is gone
        broker.start()
        records = await read_topic(
            kafka, topics.LIFECYCLE, until=lambda rs: wanted <= {event_id_of(r) for r in rs}
        )
        assert_each_subjects_events_once_in_order(records, events)  # again, once
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        broker.stop()
