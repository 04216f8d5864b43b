"""Storing accepted events: the idempotency record, the outbox message and an audit entry go into
one transaction, so an event is either durable and queued for Kafka, or not there. The API keeps
no payload once the message is published: the purger holds what the clocks need.

This is the intake's hot path. On PostgreSQL a whole group of events is stored by one statement
in one round trip, whatever its size (:func:`accept_on_postgresql`); SQLite, the embedded
default, takes the portable road of a lookup and inserts in one transaction (:func:`accept`).
"""

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import orjson
import psycopg
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from services.api import audit
from services.api.api_keys import Principal
from shared.domain.contract import LifecycleEvent
from shared.domain.contract.lifecycle_message import SCHEMA_VERSION, LifecycleMessage
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.messaging.outbox.message import message_headers
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.api import IdempotencyRecord
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

MAX_ATTEMPTS = 3
#: SQLSTATEs of a transaction the database rolled back to let others on: run it again.
ROLLED_BACK = ("40P01", "40001")  # deadlock victim, serialization failure
_RECORDS = table_of(IdempotencyRecord).c


@dataclass(frozen=True, slots=True)
class Intake:
    """One validated event, pseudonymised: the message for Kafka and the digest that tells a
    replay from a conflict."""

    event: LifecycleEvent
    event_id: UUID  # the event's, read often enough on the hot path to be kept at hand
    pseudonym: str
    message_json: str
    body_digest: str
    actor: Principal

    @classmethod
    def of(cls, event: LifecycleEvent, pseudonymiser: Pseudonymiser, actor: Principal) -> "Intake":
        pseudonym = event.subject.pseudonym(pseudonymiser)
        fields = LifecycleMessage.fields_of(event)
        # Of the event (its subject by pseudonym, which names one person), not of the message:
        # stored digests must stay comparable when the message's wire format changes.
        digest = pseudonymiser.digest("event-body", f"{pseudonym}{fields}".encode())
        message_json = LifecycleMessage.json_of(fields, pseudonym)
        return cls(event, event.event_id, pseudonym, message_json, digest, actor)


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: UUID
    status: str  # "accepted" | "duplicate" | "conflict"
    accepted_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Earlier:
    body_digest: str
    accepted_at: datetime


async def accept_on_postgresql(
    cursor: psycopg.AsyncCursor[Any], intakes: Sequence[Intake], *, now: datetime
) -> list[Outcome]:
    """Store the new events of ``intakes``; say per event what happened, in order.

    One statement in one round trip, whatever the number of events, on a cursor of an autocommit
    connection (the statement is its own transaction): this is the intake's hot path, and a
    cursor kept from group to group saves a quarter of the statement's cost.
    """
    unique = _first_of_each(intakes)
    await cursor.execute(_STORE_ON_POSTGRESQL, _store_parameters(unique, now))
    stored = {event_id for (event_id,) in await cursor.fetchall()}
    earlier: dict[UUID, _Earlier] = {}
    if len(stored) < len(intakes):  # replays, conflicts, or an id twice: what came before?
        await cursor.execute(
            "SELECT event_id, body_digest, accepted_at FROM idempotency_record"
            " WHERE event_id = ANY(%s)",
            [list(unique.keys() - stored)],
        )
        earlier = {
            event_id: _Earlier(digest, accepted_at.astimezone(UTC))  # in the session's zone
            for event_id, digest, accepted_at in await cursor.fetchall()
        }
    return _outcomes(intakes, unique, stored, earlier, now)


def accept(engine: Engine, intakes: Sequence[Intake], *, now: datetime) -> list[Outcome]:
    """Like :func:`accept_on_postgresql`, for SQLite (the embedded default), portably: the ids
    are looked up, then the new events inserted, in one transaction. Should another process
    store one of our ids in between, or the database pick us as a deadlock victim, it is run
    again."""
    unique = _first_of_each(intakes)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with engine.begin() as connection:
                earlier = _earlier(connection, unique.keys())
                new = [intake for intake in unique.values() if intake.event_id not in earlier]
                _insert(connection, new, now)
            break
        except (IntegrityError, OperationalError) as error:
            retryable = isinstance(error, IntegrityError) or _is_serialization_failure(error)
            if not retryable or attempt == MAX_ATTEMPTS:
                raise
    return _outcomes(intakes, unique, {intake.event_id for intake in new}, earlier, now)


def _first_of_each(intakes: Sequence[Intake]) -> dict[UUID, Intake]:
    unique: dict[UUID, Intake] = {}
    for intake in intakes:
        unique.setdefault(intake.event_id, intake)
    return unique


def _outcomes(
    intakes: Sequence[Intake],
    unique: dict[UUID, Intake],
    stored: set[UUID],
    earlier: dict[UUID, _Earlier],
    now: datetime,
) -> list[Outcome]:
    """An id stored now is accepted the first time it comes; any other time, and an id stored
    before, is a replay when its body digest matches, else a conflict."""
    outcomes = []
    for intake in intakes:
        event_id = intake.event_id
        if event_id in stored:
            first = unique[event_id]
            if intake is first:
                outcomes.append(Outcome(event_id, "accepted", now))
                continue
            before = _Earlier(first.body_digest, now)
        else:
            before = earlier[event_id]
        if before.body_digest == intake.body_digest:
            outcomes.append(Outcome(event_id, "duplicate", before.accepted_at))
        else:
            outcomes.append(Outcome(event_id, "conflict", None))
    return outcomes


def _is_serialization_failure(error: OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) in ROLLED_BACK


def _earlier(connection: Connection, event_ids: Collection[UUID]) -> dict[UUID, _Earlier]:
    rows = connection.execute(
        select(_RECORDS.event_id, _RECORDS.body_digest, _RECORDS.accepted_at).where(
            one_of(connection, _RECORDS.event_id, event_ids)
        )
    )
    return {row.event_id: _Earlier(row.body_digest, row.accepted_at) for row in rows}


# One statement, so one round trip and an implicit transaction: unique keys inserted in id order
# (overlapping groups queue instead of deadlocking), ``ON CONFLICT DO NOTHING`` leaves replays
# (also concurrent ones) out, and only the ids it stored get an outbox message, in the order the
# events came (the order they are published in), and count in the audit entry of their key.
_STORE_ON_POSTGRESQL = """
WITH incoming AS (
    SELECT * FROM ROWS FROM (
        json_to_recordset(%(events)s::json) AS (
            event_id uuid, body_digest text, message_key text, value text, headers text,
            actor text, topic text, urgent boolean
        )
    ) WITH ORDINALITY AS incoming (event_id, body_digest, message_key, value, headers, actor,
                                   topic, urgent, position)
), stored AS (
    INSERT INTO idempotency_record (event_id, body_digest, accepted_at)
    SELECT event_id, body_digest, %(now)s FROM incoming ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), queued AS (
    INSERT INTO outbox_message (event_id, topic, message_key, value, headers, created_at, urgent)
    SELECT event_id, topic, message_key, value, headers, %(now)s, urgent
    FROM incoming JOIN stored USING (event_id) ORDER BY position
), audited AS (
    INSERT INTO audit_entry (at, actor, action, detail)
    SELECT %(now)s, actor, 'events.accepted', jsonb_build_object(
        'count', count(*),
        'first_event_ids', (array_agg(event_id::text ORDER BY position))[1:10]
    )::text
    FROM incoming JOIN stored USING (event_id) GROUP BY actor
)
SELECT event_id FROM stored
"""


def _lanes(intakes: Iterable[Intake]) -> Callable[[Intake], str]:
    """The topic of each event: its type's lane (:func:`topics.lifecycle_topic`), but a subject's
    events that come in together go in one lane, the immediate one if any of them belongs there,
    so that they keep the order they came in: a back-dated closure and the hold sent with it must
    not be applied the wrong way round, letting the sweep erase what the hold keeps."""
    immediate = {
        intake.pseudonym
        for intake in intakes
        if topics.lifecycle_topic(intake.event.type) == topics.LIFECYCLE_IMMEDIATE
    }

    def lane(intake: Intake) -> str:
        if intake.pseudonym in immediate:
            return topics.LIFECYCLE_IMMEDIATE
        return topics.lifecycle_topic(intake.event.type)

    return lane


def _store_parameters(unique: dict[UUID, Intake], now: datetime) -> dict[str, Any]:
    """The events as one JSON document: one parameter, where an array per column cost a third
    more to send for the small groups single events make. (orjson writes UUIDs itself.)"""
    lane = _lanes(unique.values())
    events = [
        {
            "event_id": event_id,
            "body_digest": intake.body_digest,
            "message_key": intake.pseudonym,
            "value": intake.message_json,
            "headers": message_headers(intake.event.type, event_id, SCHEMA_VERSION),
            "actor": intake.actor.name,
            "topic": (topic := lane(intake)),
            "urgent": topic in topics.URGENT,
        }
        for event_id, intake in unique.items()
    ]
    return {"events": orjson.dumps(events).decode(), "now": now}


def _insert(connection: Connection, new: Sequence[Intake], now: datetime) -> None:
    if not new:
        return
    records = [
        {"event_id": i.event_id, "body_digest": i.body_digest, "accepted_at": now} for i in new
    ]
    # Unique keys in id order (so overlapping transactions queue instead of deadlocking); the
    # outbox in the order the events came, which is the order they are published in.
    by_id = itemgetter("event_id")
    insert_rows(connection, table_of(IdempotencyRecord), sorted(records, key=by_id))
    lane = _lanes(new)
    insert_rows(connection, table_of(OutboxMessage), [_outbox_row(i, lane(i), now) for i in new])
    by_actor: dict[str, list[Intake]] = {}  # by key name, as on PostgreSQL
    for intake in new:
        by_actor.setdefault(intake.actor.name, []).append(intake)
    for accepted in by_actor.values():
        audit.record(
            connection,
            actor=accepted[0].actor,
            action="events.accepted",
            at=now,
            count=len(accepted),
            first_event_ids=[str(i.event_id) for i in accepted[:10]],
        )


def _outbox_row(intake: Intake, topic: str, now: datetime) -> dict[str, Any]:
    event = intake.event
    return outbox_row(
        topic,
        key=intake.pseudonym,
        value=intake.message_json,
        event_type=event.type,
        event_id=event.event_id,
        schema_version=SCHEMA_VERSION,
        now=now,
    )
