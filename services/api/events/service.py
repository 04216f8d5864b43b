"""Storing accepted events: the idempotency record, the outbox message and an audit entry go into
one transaction, so an event is either durable and queued for Kafka, or not there. The API keeps
no payload once the message is published: the purger holds what the clocks need."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from uuid import UUID

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from services.api import audit
from services.api.api_keys import Principal
from shared import topics
from shared.bulk_insert import insert_rows
from shared.contract import LifecycleEvent
from shared.contract.lifecycle_message import SCHEMA_VERSION, LifecycleMessage
from shared.outbox import outbox_row
from shared.pseudonym import Pseudonymiser
from shared.tables.api import IdempotencyRecord
from shared.tables.outbox import OutboxMessage

MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Intake:
    """One validated event, pseudonymised, with the digest that tells a replay from a conflict."""

    event: LifecycleEvent
    message: LifecycleMessage
    body_digest: str
    actor: Principal

    @classmethod
    def of(cls, event: LifecycleEvent, pseudonymiser: Pseudonymiser, actor: Principal) -> "Intake":
        pseudonym = event.subject.pseudonym(pseudonymiser)
        digest = pseudonymiser.digest("event-body", event.model_dump_json().encode())
        return cls(event, LifecycleMessage.from_event(event, pseudonym), digest, actor)


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: UUID
    status: str  # "accepted" | "duplicate" | "conflict"
    accepted_at: datetime | None


def accept(engine: Engine, intakes: Sequence[Intake], *, now: datetime) -> list[Outcome]:
    """Store the new events of ``intakes`` in one transaction; say per event what happened.

    A concurrent transaction may store the same event id between our check and our commit; the
    unique key then refuses ours, and another pass classifies it as the replay it is. Should the
    database pick ours as a deadlock victim, it is run again too.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _accept_once(engine, intakes, now=now)
        except (IntegrityError, OperationalError) as error:
            retryable = isinstance(error, IntegrityError) or _is_serialization_failure(error)
            if not retryable or attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _is_serialization_failure(error: OperationalError) -> bool:
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")


def _accept_once(engine: Engine, intakes: Sequence[Intake], *, now: datetime) -> list[Outcome]:
    records = IdempotencyRecord.__table__.c  # type: ignore[attr-defined]
    with engine.begin() as connection:
        ids = [intake.event.event_id for intake in intakes]
        known = {
            row.event_id: row
            for row in connection.execute(
                select(records.event_id, records.body_digest, records.accepted_at).where(
                    records.event_id.in_(ids)
                )
            )
        }
        outcomes: list[Outcome] = []
        new: list[Intake] = []
        seen_now: dict[UUID, str] = {}
        for intake in intakes:
            event_id = intake.event.event_id
            earlier = known.get(event_id)
            digest = earlier.body_digest if earlier else seen_now.get(event_id)
            if digest is None:
                seen_now[event_id] = intake.body_digest
                new.append(intake)
                outcomes.append(Outcome(event_id, "accepted", now))
            elif digest == intake.body_digest:
                outcomes.append(
                    Outcome(event_id, "duplicate", earlier.accepted_at if earlier else now)
                )
            else:
                outcomes.append(Outcome(event_id, "conflict", None))
        if new:
            _insert(connection, new, now)
            by_actor: dict[Principal, list[Intake]] = {}
            for intake in new:
                by_actor.setdefault(intake.actor, []).append(intake)
            for actor, accepted in by_actor.items():
                audit.record(
                    connection,
                    actor=actor,
                    action="events.accepted",
                    at=now,
                    count=len(accepted),
                    first_event_ids=[str(i.event.event_id) for i in accepted[:10]],
                )
        return outcomes


def _insert(connection: Connection, intakes: Sequence[Intake], now: datetime) -> None:
    idempotency, outbox = [], []
    for intake in intakes:
        message = intake.message
        idempotency.append(
            {"event_id": message.event_id, "body_digest": intake.body_digest, "accepted_at": now}
        )
        outbox.append(
            outbox_row(
                topics.LIFECYCLE,
                key=message.subject,
                value=message.to_json(),
                event_type=message.type,
                event_id=message.event_id,
                schema_version=SCHEMA_VERSION,
                now=now,
            )
        )
    # Unique keys in id order (so overlapping transactions queue instead of deadlocking); the
    # outbox in the order the events came, which is the order they are published in.
    by_id = itemgetter("event_id")
    insert_rows(connection, IdempotencyRecord.__table__, sorted(idempotency, key=by_id))  # type: ignore[attr-defined]
    insert_rows(connection, OutboxMessage.__table__, outbox)  # type: ignore[attr-defined]
