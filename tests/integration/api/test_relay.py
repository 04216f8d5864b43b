"""The outbox relay under failure: a broker outage, two relays at once, a lease lost."""

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import Engine, select, text

from services.api.api_keys import Principal, Scope
from services.api.events import service
from services.api.metrics import ApiMetrics
from shared.domain.contract import parse_event
from shared.domain.contract.examples import EXAMPLES
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker, free_loopback_port
from shared.messaging.outbox import OutboxRelay
from shared.messaging.outbox.lease import LOCK_FILE_SUFFIX, RELAY_LOCK
from shared.storage.database import make_engine
from shared.storage.tables.outbox import PublishedMessage, RelayLease
from shared.storage.tables.table import table_of
from tests.integration.conftest import (
    SECRET,
    RunningApi,
    crash,
    forget_the_session_broker,
    relay_settings,
)
from tests.kafka_reading import event_id_of, read_topic
from tests.polling import eventually


def contacts(subjects: list[str], count: int) -> list[dict]:
    """``count`` marketing contacts, alternating between the subjects, in posting order."""
    return [
        {
            **EXAMPLES["marketing.contact"],
            "event_id": str(uuid.uuid4()),
            "subject": {"ref": subjects[i % len(subjects)]},
        }
        for i in range(count)
    ]


async def post_all(api: RunningApi, events: list[dict]) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    for event in events:
        response = await api.client.post("/v1/events", json=event, headers=headers)
        assert response.status_code == 202


async def metric(api: RunningApi, name: str) -> float:
    text = (await api.client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


async def metric_of(api: RunningApi, name: str, topic: str) -> float:
    text = (await api.client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith(f'{name}{{topic="{topic}"}} '))
    return float(line.split()[1])


async def backlog(api: RunningApi) -> float:
    return await metric(api, "gallring_outbox_backlog")


_LEASE = table_of(RelayLease)
_PUBLISHED = table_of(PublishedMessage)


def lease_holder(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(select(_LEASE.c.holder)).scalar_one()


def take_the_lease_away(engine: Engine) -> None:
    """What a holder still alive can lose its lease to: on PostgreSQL its session ended (a
    connection broken, or ended by an administrator); on SQLite its lock file removed."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                    " AND (classid::bigint << 32 | objid::bigint) = :key"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"key": RELAY_LOCK},
            ).all()
        assert ended == [(True,)]  # the holder's session, ended
    else:
        Path(engine.url.database + LOCK_FILE_SUFFIX).unlink()


def ids_by_key(records, wanted: set[str]) -> dict[bytes, list[str]]:
    by_key: dict[bytes, list[str]] = defaultdict(list)
    for record in records:
        event_id = event_id_of(record)
        if event_id in wanted:
            by_key[record.key].append(event_id)
    return by_key


async def test_a_broker_outage_loses_nothing_and_keeps_each_subjects_order(
    make_api, migrated_url, kafka_settings
) -> None:
    forget_the_session_broker(migrated_url)
    port = free_loopback_port()
    kafka = kafka_settings.model_copy(
        update={"bootstrap": f"127.0.0.1:{port}", "request_timeout_ms": 2_000}
    )
    broker = EmbeddedBroker(port)
    broker.start()
    try:
        async with make_api(kafka=kafka) as api:
            subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(2)]
            before = contacts(subjects, 4)
            await post_all(api, before)
            await read_topic(
                kafka,
                topics.LIFECYCLE,
                until=lambda rs: {e["event_id"] for e in before} <= {event_id_of(r) for r in rs},
            )

            crash(broker)
            during = contacts(subjects, 12)
            await post_all(api, during)  # still 202: the outbox holds them
            assert await backlog(api) >= len(during)
            # Once the relay has seen the outage, bring the broker back (same port, empty: the
            # relay creates the topics again, as it does at every new connection).
            failures = "gallring_outbox_publish_failures_total"

            async def relay_failed() -> bool:
                return await metric(api, failures) >= 1

            await eventually(relay_failed, timeout=20, interval=0.1)
            assert await metric(api, failures) >= 1
            assert await backlog(api) >= len(during)
            broker.start()
            wanted = {e["event_id"] for e in during}
            records = await read_topic(
                kafka,
                topics.LIFECYCLE,
                until=lambda rs: wanted <= {event_id_of(r) for r in rs},
                timeout=60,
            )
            published = ids_by_key(records, wanted)
            pseudonymiser = Pseudonymiser(SECRET.encode())
            for subject in subjects:
                key = pseudonymiser.pseudonym("ref", subject).encode()
                in_posting_order = [e["event_id"] for e in during if e["subject"]["ref"] == subject]
                assert published[key] == in_posting_order  # each once, in order

            async def outbox_empty() -> bool:
                return await backlog(api) == 0

            await eventually(outbox_empty, timeout=5, interval=0.1)
            assert await backlog(api) == 0
    finally:
        broker.stop()
        forget_the_session_broker(migrated_url)


async def test_what_a_broker_forgets_after_acknowledging_it_is_published_again(
    make_api, migrated_url, kafka_settings
) -> None:
    forget_the_session_broker(migrated_url)
    broker = EmbeddedBroker()
    broker.start()
    kafka = kafka_settings.model_copy(update={"bootstrap": broker.bootstrap_servers})
    relay = relay_settings(keep_published_seconds=300)
    try:
        async with make_api(kafka=kafka, relay=relay) as api:
            subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(3)]
            before = contacts(subjects, 30)
            await post_all(api, before)
            wanted = {e["event_id"] for e in before}
            await read_topic(
                kafka, topics.LIFECYCLE, until=lambda rs: wanted <= {event_id_of(r) for r in rs}
            )

            crash(broker)  # the broker keeps nothing: what it acknowledged is gone
            broker.start()
            records = await read_topic(
                kafka, topics.LIFECYCLE, until=lambda rs: wanted <= {event_id_of(r) for r in rs}
            )
            published = ids_by_key(records, wanted)
            pseudonymiser = Pseudonymiser(SECRET.encode())
            for subject in subjects:
                key = pseudonymiser.pseudonym("ref", subject).encode()
                in_posting_order = [e["event_id"] for e in before if e["subject"]["ref"] == subject]
                assert published[key] == in_posting_order  # each again, once, in order
            # At least these: a loss seen twice (by an acknowledgement, then by asking the
            # broker) publishes some twice, which consumers skip by event id.
            republished = await metric_of(
                api, "gallring_outbox_republished_total", topics.LIFECYCLE
            )
            assert republished >= len(before)  # some twice, should it see the loss twice
    finally:
        broker.stop()
        forget_the_session_broker(migrated_url)


async def test_published_messages_are_kept_for_the_window_then_deleted(
    make_api, kafka_settings
) -> None:
    async with make_api(relay=relay_settings(keep_published_seconds=3)) as api:
        events = contacts([f"crm:{uuid.uuid4().hex[:8]}"], 5)
        await post_all(api, events)
        wanted = {e["event_id"] for e in events}
        await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda rs: wanted <= {event_id_of(r) for r in rs},
        )

        def kept() -> set[str]:
            with api.engine.connect() as connection:
                rows = connection.execute(select(_PUBLISHED.c.event_id))
                return {str(event_id) for event_id in rows.scalars()} & wanted

        # Published, and still there to publish again; then deleted.
        await eventually(lambda: kept() == wanted, timeout=5)
        await eventually(lambda: not kept(), timeout=10, interval=0.1)


def assert_each_subjects_events_once_in_order(records, events: list[dict]) -> None:
    """Every event of ``events`` among ``records`` exactly once, each subject's in posting order."""
    published = ids_by_key(records, {e["event_id"] for e in events})
    pseudonymiser = Pseudonymiser(SECRET.encode())
    for subject in {e["subject"]["ref"] for e in events}:
        key = pseudonymiser.pseudonym("ref", subject).encode()
        expected = [e["event_id"] for e in events if e["subject"]["ref"] == subject]
        assert published[key] == expected


async def test_two_relays_at_once_publish_each_event_once(migrated_url, kafka_settings) -> None:
    engine = make_engine(migrated_url)
    pseudonymiser = Pseudonymiser(SECRET.encode())
    settings = relay_settings(lease_seconds=1.0, batch_size=50)
    metrics = [ApiMetrics() for _ in (1, 2)]
    registries = [m.registry for m in metrics]
    relays = [
        OutboxRelay(engine, kafka_settings, settings, m.outbox, holder=f"relay-{n}")
        for n, m in enumerate(metrics, start=1)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(3)]
        first, second = contacts(subjects, 150), contacts(subjects, 150)
        actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
        for chunk in (first[:75], first[75:]):
            intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in chunk]
            service.accept(engine, intakes, now=datetime.now(UTC))
        wanted_first = {e["event_id"] for e in first}
        await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda rs: wanted_first <= {event_id_of(r) for r in rs},
        )
        # The lease holder goes away; the other takes over the rest.
        leaving = next(n for n, relay in enumerate(relays) if relay.holder == lease_holder(engine))
        relays[leaving].stop()
        await tasks[leaving]
        intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in second]
        service.accept(engine, intakes, now=datetime.now(UTC))

        wanted = wanted_first | {e["event_id"] for e in second}
        records = await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda rs: wanted <= {event_id_of(r) for r in rs},
        )
        assert_each_subjects_events_once_in_order(records, first + second)
        # Each relay says what it published itself, by topic: both did, the first most.
        counts = [
            registry.get_sample_value(
                "gallring_outbox_published_total", {"topic": topics.LIFECYCLE}
            )
            for registry in registries
        ]
        assert all(counts) and sum(counts) >= len(wanted)  # (the database holds others' too)
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        engine.dispose()


class _SlowToStart(OutboxRelay):
    """A relay whose producer starts only once ``go`` is set: a slow broker."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.go = asyncio.Event()

    async def _start_producer(self):
        await self.go.wait()
        return await super()._start_producer()


async def test_a_relay_that_lost_its_lease_while_it_started_leaves_the_outbox_to_the_holder(
    fresh_db, kafka_settings
) -> None:
    """A live holder keeps its lease however long its round takes; one that lost it meanwhile
    finds out before it sends anything, and the new holder publishes."""
    engine = fresh_db  # an empty outbox: the counts below are this test's events
    pseudonymiser = Pseudonymiser(SECRET.encode())
    actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
    settings = relay_settings(lease_seconds=1.0)
    slow = _SlowToStart(engine, kafka_settings, settings, ApiMetrics().outbox, holder="slow")
    other = OutboxRelay(engine, kafka_settings, settings, ApiMetrics().outbox, holder="other")

    def store(count: int) -> None:
        events = contacts([f"crm:{uuid.uuid4().hex[:8]}"], count)
        intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in events]
        service.accept(engine, intakes, now=datetime.now(UTC))

    store(10)
    slow_round = asyncio.create_task(slow.publish_once())  # takes the lease, then waits
    try:
        await asyncio.sleep(settings.lease_seconds + 0.2)
        assert not slow_round.done()  # it holds the lease and is starting its producer
        assert lease_holder(engine) == "slow"
        assert await other.publish_once() == 0  # alive, past lease_seconds: still the holder's
        take_the_lease_away(engine)
        assert await other.publish_once() == 10  # the other took over
        assert lease_holder(engine) == "other"
        store(5)
        slow.go.set()
        assert await slow_round == 0  # what the holder has not sent yet is not sent twice
        assert await other.publish_once() == 5
    finally:
        slow_round.cancel()
        await slow.close()
        await other.close()


async def test_the_topics_are_created_at_start(make_api, migrated_url, kafka_settings) -> None:
    # A broker of its own: without this, its relay would take it for the session's broker
    # having lost what it acknowledged, and be publishing that again when the API stops.
    forget_the_session_broker(migrated_url)
    try:
        with EmbeddedBroker() as broker:
            kafka = kafka_settings.model_copy(update={"bootstrap": broker.bootstrap_servers})
            async with make_api(kafka=kafka):
                admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
                await admin.start()
                try:

                    async def all_created() -> bool:
                        return set(topics.ALL_TOPICS) <= set(await admin.list_topics())

                    await eventually(all_created, timeout=10, interval=0.1)
                    assert set(topics.ALL_TOPICS) <= set(await admin.list_topics())
                    described = await admin.describe_topics([topics.LIFECYCLE])
                    assert len(described[0]["partitions"]) == kafka.topic_partitions
                finally:
                    await admin.close()
    finally:
        forget_the_session_broker(migrated_url)  # nor this broker's of the session's


async def test_an_unsubscribe_is_published_ahead_of_a_backlog_accepted_before_it(
    migrated_url, kafka_settings
) -> None:
    """The notice's "at once": the relay sends the immediate lane's messages first, however
    many others wait in the outbox."""
    engine = make_engine(migrated_url)
    relay = OutboxRelay(engine, kafka_settings, relay_settings(batch_size=50), ApiMetrics().outbox)
    pseudonymiser = Pseudonymiser(SECRET.encode())
    actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
    try:
        while await relay.publish_once():  # whatever other tests left in the outbox
            pass
        subjects = [f"crm:{uuid.uuid4().hex[:8]}" for _ in range(5)]
        backlog_events = contacts(subjects, 200)  # four batches of the main lane
        unsubscribes = [
            {
                **EXAMPLES["newsletter.unsubscribed"],
                "event_id": str(uuid.uuid4()),
                "subject": {"ref": subject},
            }
            for subject in subjects[:2]
        ]
        intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in backlog_events]
        service.accept(engine, intakes, now=datetime.now(UTC))
        for unsubscribe in unsubscribes:  # each as a single event is accepted
            await accept_one(
                engine, service.Intake.of(parse_event(unsubscribe), pseudonymiser, actor)
            )

        await relay.publish_once()

        wanted = [e["event_id"] for e in unsubscribes]
        await read_topic(
            kafka_settings,
            topics.LIFECYCLE_IMMEDIATE,
            until=lambda rs: set(wanted) <= {event_id_of(r) for r in rs},
        )
        with engine.connect() as connection:
            published = set(
                connection.execute(
                    select(_PUBLISHED.c.event_id).where(
                        _PUBLISHED.c.event_id.in_(
                            [uuid.UUID(e["event_id"]) for e in backlog_events]
                        )
                    )
                ).scalars()
            )
        assert len(published) == 50  # the backlog's first batch went with them, no more
    finally:
        await relay.close()
        engine.dispose()


async def accept_one(engine: Engine, intake: service.Intake) -> None:
    """A single event as POST /v1/events stores it: on PostgreSQL in one statement of its own
    (the group commit's), elsewhere as a batch of one."""
    if engine.dialect.name != "postgresql":
        service.accept(engine, [intake], now=datetime.now(UTC))
        return
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with connection, connection.cursor() as cursor:
        await service.accept_on_postgresql(cursor, [intake], now=datetime.now(UTC))


async def test_an_immediate_message_published_again_stays_ahead_of_its_subjects_newer_ones(
    migrated_url, kafka_settings
) -> None:
    """A broker that lost the immediate lane gets its kept messages again, and before the newer
    messages of the same subjects: a hold placed before an erasure request stays before it."""
    engine = make_engine(migrated_url)
    relay = OutboxRelay(engine, kafka_settings, relay_settings(batch_size=50), ApiMetrics().outbox)
    pseudonymiser = Pseudonymiser(SECRET.encode())
    actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))

    def intake(event_type: str, subject: str) -> service.Intake:
        event = {**EXAMPLES[event_type], "event_id": str(uuid.uuid4()), "subject": {"ref": subject}}
        return service.Intake.of(parse_event(event), pseudonymiser, actor)

    try:
        while await relay.publish_once():  # whatever other tests left in the outbox
            pass
        subject = f"crm:{uuid.uuid4().hex[:8]}"
        hold = intake("legal_hold.placed", subject)
        await accept_one(engine, hold)
        await relay.publish_once()  # published, and kept
        backlog = [intake("marketing.contact", f"crm:{uuid.uuid4().hex[:8]}") for _ in range(100)]
        service.accept(engine, backlog, now=datetime.now(UTC))
        request = intake("dsr.erasure_requested", subject)
        await accept_one(engine, request)

        relay._mark_unpublished([TopicPartition(topics.LIFECYCLE_IMMEDIATE, 0)])  # the loss
        await relay.publish_once()

        wanted = {str(hold.event_id), str(request.event_id)}
        records = await read_topic(
            kafka_settings,
            topics.LIFECYCLE_IMMEDIATE,
            until=lambda rs: str(request.event_id) in {event_id_of(r) for r in rs},
        )
        order = [event_id_of(r) for r in records if event_id_of(r) in wanted]
        assert order == [str(hold.event_id), str(hold.event_id), str(request.event_id)]
    finally:
        await relay.close()
        engine.dispose()
