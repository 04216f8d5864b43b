"""Applying lifecycle messages: store each new event as a fact of its subject and re-evaluate the
subject's clocks, all in one transaction, so that a message is either applied (and its id
recorded) or not at all. Redelivered messages are recognised by their event id and skipped."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select

from services.purger import subject_clocks
from shared.contract.lifecycle_message import LifecycleMessage
from shared.database import one_of
from shared.engine import ClockState, RetentionEngine
from shared.tables.purger import ConsumedEvent

_CONSUMED = ConsumedEvent.__table__  # type: ignore[attr-defined]
_ERASABLE = (ClockState.DUE, ClockState.ERASE_NOW)


@dataclass(frozen=True, slots=True)
class Applied:
    new_events: int
    erasable_clocks: int  # clocks now due or to erase at once: worth a sweep right away


def apply_messages(
    db: Engine, retention: RetentionEngine, messages: Sequence[LifecycleMessage], now: datetime
) -> Applied:
    with db.begin() as connection:
        ids = {message.event_id for message in messages}
        already = select(_CONSUMED.c.event_id).where(one_of(connection, _CONSUMED.c.event_id, ids))
        known = set(connection.execute(already).scalars().all())
        fresh: dict = {}
        for message in messages:
            if message.event_id not in known:
                fresh.setdefault(message.event_id, message)
        if not fresh:
            return Applied(0, 0)
        connection.execute(
            insert(_CONSUMED), [{"event_id": event_id, "consumed_at": now} for event_id in fresh]
        )
        connection.execute(
            insert(subject_clocks.FACTS),
            [
                {
                    "event_id": message.event_id,
                    "subject_pseudonym": message.subject,
                    "message": message.to_json(),
                }
                for message in fresh.values()
            ],
        )
        erasable = 0
        # Subjects in a fixed order, so that two transactions lock their clocks alike.
        for subject in sorted({message.subject for message in fresh.values()}):
            existing = subject_clocks.locked_clocks(connection, subject)
            facts = subject_clocks.load_facts(connection, subject)
            clocks = retention.evaluate(subject, facts, now)
            subject_clocks.store(connection, subject, clocks, existing, now)
            erasable += sum(1 for clock in clocks if clock.state in _ERASABLE)
        return Applied(len(fresh), erasable)
