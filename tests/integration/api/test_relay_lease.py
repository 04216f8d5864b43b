"""The outbox relay's lease when its holder dies: another relay publishes within seconds, not
after the lease's time (``GALLRING_RELAY_LEASE_SECONDS``, 15 s by default) has run out."""

import asyncio
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from services.api.api_keys import Principal, Scope
from services.api.events import service
from services.api.metrics import ApiMetrics
from shared.domain.contract import parse_event
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.outbox import OutboxRelay
from shared.messaging.outbox.lease import PublishingLease
from shared.runtime.settings import RelaySettings
from shared.storage.database import make_engine, one_of
from shared.storage.tables.outbox import OutboxMessage, RelayLease
from shared.storage.tables.table import table_of
from tests.integration.api.test_relay import contacts, take_the_lease_away
from tests.integration.conftest import ROOT, SECRET
from tests.kafka_reading import event_id_of, read_topic
from tests.polling import eventually

#: A relay as the API and the purger run it, with the default settings, in a process of its own.
RELAY_PROCESS = """
import asyncio, sys
from prometheus_client import CollectorRegistry
from shared.storage.database import make_engine
from shared.messaging.outbox import OutboxMetrics, OutboxRelay
from shared.runtime.settings import KafkaSettings, RelaySettings

url, kafka = sys.argv[1:]
relay = OutboxRelay(
    make_engine(url),
    KafkaSettings.model_validate_json(kafka),
    RelaySettings(),
    OutboxMetrics(CollectorRegistry()),
    holder="doomed",
)
asyncio.run(relay.run())
"""
#: Well under the lease's default 15 s, and ample for a relay that takes over to publish.
TAKEOVER_SECONDS = 5.0

_OUTBOX = table_of(OutboxMessage)
_LEASE = table_of(RelayLease)


def holder_named(engine: Engine) -> str | None:
    """Who the lease row names (None before any relay held it)."""
    with engine.connect() as connection:
        return connection.execute(select(_LEASE.c.holder)).scalar_one_or_none()


def waiting(engine: Engine, event_ids: list[str]) -> int:
    """How many of these events are still in the outbox, unpublished."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_OUTBOX.c.id).where(
                one_of(connection, _OUTBOX.c.event_id, [uuid.UUID(e) for e in event_ids])
            )
        )
        return len(rows.all())


async def test_a_killed_holders_lease_is_taken_over_within_seconds(
    migrated_url, kafka_settings, tmp_path: Path
) -> None:
    engine = make_engine(migrated_url)
    log = tmp_path / "doomed.log"
    with log.open("wb") as output:
        doomed = subprocess.Popen(
            [sys.executable, "-c", RELAY_PROCESS, migrated_url, kafka_settings.model_dump_json()],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    survivor = OutboxRelay(
        engine,
        kafka_settings,
        RelaySettings(poll_interval_seconds=0.05),  # the default lease, as the other's
        ApiMetrics().outbox,
        holder="survivor",
    )
    running = None
    try:
        await eventually(lambda: holder_named(engine) == "doomed" or doomed.poll(), timeout=60)
        assert doomed.poll() is None, log.read_text()
        running = asyncio.create_task(survivor.run())  # it waits for the lease
        doomed.send_signal(signal.SIGKILL)  # no chance to hand the lease on
        await asyncio.to_thread(doomed.wait)

        events = contacts([f"crm:{uuid.uuid4().hex[:8]}"], 20)
        pseudonymiser = Pseudonymiser(SECRET.encode())
        actor = Principal("test", "relay-test", frozenset({Scope.EVENTS_WRITE}))
        intakes = [service.Intake.of(parse_event(e), pseudonymiser, actor) for e in events]
        service.accept(engine, intakes, now=datetime.now(UTC))
        stored = [e["event_id"] for e in events]
        assert waiting(engine, stored) == len(stored)

        # Published (rows go only once the broker acknowledged them) by the survivor.
        await eventually(lambda: waiting(engine, stored) == 0, timeout=TAKEOVER_SECONDS)
        assert holder_named(engine) == "survivor"
        await read_topic(
            kafka_settings,
            topics.LIFECYCLE,
            until=lambda records: set(stored) <= {event_id_of(r) for r in records},
        )
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        survivor.stop()
        if running is not None:
            await running
        engine.dispose()


def test_a_holder_that_lost_its_lease_stops_and_takes_it_again_once_free(fresh_db) -> None:
    first = PublishingLease(fresh_db, "first", lease_seconds=15.0)
    second = PublishingLease(fresh_db, "second", lease_seconds=15.0)
    try:
        assert first.hold() and first.hold()
        assert not second.hold()
        assert holder_named(fresh_db) == "first"
        take_the_lease_away(fresh_db)
        assert not first.hold()  # it finds out, and stops publishing
        assert second.hold()
        assert holder_named(fresh_db) == "second"
        assert not first.hold()
        second.release()
        with fresh_db.connect() as connection:  # ended: relays of an older release go by it
            ended = connection.execute(select(_LEASE.c.expires_at)).scalar_one()
        assert ended <= datetime.now(UTC)
        assert first.hold()  # handed on at once, not after lease_seconds
        assert holder_named(fresh_db) == "first"
    finally:
        first.release()
        second.release()


def test_relays_on_a_database_in_memory_take_turns() -> None:
    """A database in memory is one process's: its relays share a lock in that process."""
    engine = make_engine("sqlite://")
    try:
        _LEASE.create(engine)
        first = PublishingLease(engine, "first", lease_seconds=15.0)
        second = PublishingLease(engine, "second", lease_seconds=15.0)
        assert first.hold() and not second.hold()
        assert holder_named(engine) == "first"
        first.release()
        assert second.hold() and not first.hold()
        second.release()
    finally:
        engine.dispose()
