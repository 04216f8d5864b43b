"""One subject's stored facts and clocks, read and written inside a caller's transaction.

The consumer, the sweep and the policy refresh all re-evaluate subjects from their facts with the
engine; this is the code they share. They read the facts by way of this module's
``load_facts``/``load_facts_of`` (written in :mod:`shared.storage.subject_facts`, for the API
reads them too), so that the purger's tests can stand in for the reading in one place. Clock rows
are keyed by ``(category, scope key, scope value)``, with ``""`` for a subject-wide scope.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Row, delete, select, text, tuple_, union, update

from shared.domain.contract.events import (
    DSR_ERASURE_REQUESTED,
    HOLD_EVENT_TYPES,
    LEGAL_HOLD_PLACED,
)
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import ClockState, RetentionClock, RetentionEngine
from shared.domain.engine.evaluate import ClockKey
from shared.domain.engine.holds import Holds
from shared.domain.pseudonym import clock_hash
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.subject_facts import FACTS
from shared.storage.subject_facts import load_facts as load_facts
from shared.storage.subject_facts import load_facts_of as load_facts_of
from shared.storage.tables.api import ReviewDecision
from shared.storage.tables.purger import AWAITING_REVIEW, DispositionReview, StoredClock
from shared.storage.tables.table import table_of

if TYPE_CHECKING:
    from services.purger.policy_change_review import MadeDue

RowKey = tuple[str, str, str]
#: States of clocks the sweep erases: worth a sweep right away when an evaluation reaches them.
ERASABLE = (ClockState.DUE, ClockState.ERASE_NOW)
CLOCKS = table_of(StoredClock)
REVIEWS = table_of(DispositionReview)
DECISIONS = table_of(ReviewDecision)


class ClockChanged(Exception):
    """A clock changed after it was read (on SQLite, which locks no rows on reading); the
    transaction is rolled back and the work done again later, on what is true then."""


def unchanged(connection: Connection, rows: Iterable[Row[Any]]) -> Any:
    """A condition: these clock rows still are as they were read. On PostgreSQL the rows are
    locked when read (``FOR UPDATE``), so nothing can have changed them."""
    rows = list(rows)
    if connection.dialect.name == "postgresql":
        return one_of(connection, CLOCKS.c.id, [row.id for row in rows])
    return tuple_(CLOCKS.c.id, CLOCKS.c.updated_at).in_([(r.id, r.updated_at) for r in rows])


def key_hash(subject: str, key: RowKey) -> str:
    """What an erasure's proof keeps of the clock it erased: names neither subject nor scope,
    yet an event about that clock's data hashes to it."""
    return clock_hash(subject, *key)


def row_key(row: Row[Any]) -> RowKey:
    return (row.category, row.scope_key, row.scope_value)


def routed_key(key: ClockKey) -> RowKey:
    """The row key of a clock an event feeds (``RetentionEngine.clock_keys``)."""
    category, scope = key
    return (category.value, *(scope if scope is not None else ("", "")))


def clock_key(clock: RetentionClock) -> RowKey:
    scope_key, scope_value = clock.scope if clock.scope is not None else ("", "")
    return (clock.category.value, scope_key, scope_value)


def lock_subjects(
    connection: Connection, subjects: Iterable[str]
) -> dict[str, dict[RowKey, Row[Any]]]:
    """Each subject's clock rows, held (PostgreSQL) until the transaction ends: a lock per
    subject, which another consumer of the same subject waits for even before the subject has
    clocks, and the subject's clock rows, which a sweep erasing them holds. Both in one order,
    so that two transactions lock alike.

    The consumer takes them before it stores a subject's events: a sweep that decided on the
    subject has then committed, and what follows sees its proofs; a sweep that comes later sees
    these events. (SQLite: the transaction holds the database's write lock.)"""
    ordered = sorted(subjects)
    query = (
        select(CLOCKS)
        .where(one_of(connection, CLOCKS.c.subject_pseudonym, ordered))
        .order_by(CLOCKS.c.subject_pseudonym, CLOCKS.c.id)
    )
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended('gallring-subject:' || subject, 0))"
                " FROM unnest(CAST(:subjects AS text[])) AS subject"  # in the array's order
            ),
            {"subjects": ordered},
        ).all()
        query = query.with_for_update()
    clocks: dict[str, dict[RowKey, Row[Any]]] = {subject: {} for subject in ordered}
    for row in connection.execute(query):
        clocks[row.subject_pseudonym][row_key(row)] = row
    return clocks


def verdict_digest(
    retention: RetentionEngine, facts: Iterable[LifecycleMessage], now: datetime
) -> str | None:
    """What a stored verdict records of how it was reached (``policy_digest``): the engine's
    digest, or None while one of the subject's events lies after ``now``. The engine left that
    event out; once its time has come it counts, so the verdict must be reached again."""
    if any(fact.occurred_at > now for fact in facts):
        return None
    return retention.digest


class NewClockRows:
    """New clock rows gathered over many subjects and inserted in one statement (a COPY on
    PostgreSQL, :func:`insert_rows`): a batch of a back-fill makes a clock or two for each of its
    thousand subjects, and one round trip each would cost more than evaluating them, as the
    driver's row-by-row executemany cost a third of the purger's CPU."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def insert(self, connection: Connection) -> None:
        insert_rows(connection, CLOCKS, self.rows)
        self.rows = []


def reevaluate(
    connection: Connection,
    retention: RetentionEngine,
    subject: str,
    facts: list[LifecycleMessage],
    existing: dict[RowKey, Row[Any]],
    now: datetime,
    new_rows: NewClockRows | None = None,
    made_due: "MadeDue | None" = None,
) -> list[RetentionClock]:
    """Evaluate a locked subject again from its stored ``facts`` and store the verdict over its
    ``existing`` clock rows; returns its clocks. New rows go into ``new_rows`` when given (the
    caller inserts them), else they are inserted at once. ``made_due`` notes the clocks a policy
    change made due (``policy_change_review.py``)."""
    clocks = retention.evaluate(subject, facts, now)
    store(
        connection,
        subject,
        clocks,
        existing,
        now,
        verdict_digest(retention, facts, now),
        new_rows,
        made_due,
        erasure_requested=any(fact.type == DSR_ERASURE_REQUESTED for fact in facts),
    )
    if not clocks:
        _forget_released_holds(connection, facts)
    return clocks


def store(
    connection: Connection,
    subject: str,
    clocks: Iterable[RetentionClock],
    existing: dict[RowKey, Row[Any]],
    now: datetime,
    policy_digest: str | None,
    new_rows: NewClockRows | None = None,
    made_due: "MadeDue | None" = None,
    *,
    erasure_requested: bool = False,
) -> list[RetentionClock]:
    """Make the subject's rows say what ``clocks`` say, reached under ``policy_digest``; rows no
    clock matches are removed. Returns the clocks that are new or changed. New rows go into
    ``new_rows`` when given (the caller inserts them), else they are inserted at once. Each new
    or changed clock is shown to ``made_due``, if given, which notes those a policy change made
    due (its caller gathers them for review before the commit). ``erasure_requested``: the
    subject asked for erasure, and its due clocks leave their reviews (the brake lets them
    through: ``disposition_review.requesting_erasure``)."""
    remaining = dict(existing)
    changed = []
    pending = new_rows if new_rows is not None else NewClockRows()
    not_approved = _reviews_not_approved(connection, existing.values())
    for clock in clocks:
        values = {**_values(clock), "policy_digest": policy_digest}
        row = remaining.pop(clock_key(clock), None)
        if row is not None and row.review_id is not None:
            _keep_review(row, clock, values, row.review_id in not_approved, erasure_requested)
        if row is None:
            _, scope_key, scope_value = clock_key(clock)
            erasure_id = uuid4()
            pending.rows.append(
                {
                    "erasure_id": erasure_id,
                    "subject_pseudonym": subject,
                    "category": clock.category.value,
                    "scope_key": scope_key,
                    "scope_value": scope_value,
                    "updated_at": now,
                    **values,
                }
            )
            changed.append(clock)
            if made_due is not None:
                made_due.note(clock, None, erasure_id, now)
        elif any(getattr(row, column) != value for column, value in values.items()):
            updated = connection.execute(
                update(CLOCKS).where(unchanged(connection, [row])).values(updated_at=now, **values)
            ).rowcount
            if updated != 1:
                raise ClockChanged(row.erasure_id)
            changed.append(clock)
            if made_due is not None:
                made_due.note(clock, row, row.erasure_id, now)
    if remaining:
        gone = connection.execute(delete(CLOCKS).where(unchanged(connection, remaining.values())))
        if gone.rowcount != len(remaining):
            raise ClockChanged()
    if new_rows is None:
        pending.insert(connection)
    return changed


def _keep_review(
    row: Row[Any],
    clock: RetentionClock,
    values: dict[str, Any],
    not_approved: bool,
    erasure_requested: bool,
) -> None:
    """A clock in a disposition review stays there as long as the engine still finds it due:
    awaiting the review (an event about something else of its subject does not release it), or
    approved by it. Once the engine holds it, runs it again (a later trigger, an extension),
    cancels it or erases it at once (an unsubscribe, which the person asked for), it leaves the
    review: should it fall due again, it is counted, and stopped, anew.

    So does a clock still due whose review was decided otherwise than by an approval
    (``not_approved``: extended or held) once the engine's verdict on it changed (an extension
    that ended before the purger applied it: due again, at its ``until``): its review releases
    only approved clocks, so it would await a decided review for ever, in no open review. Out
    of it, the brake counts it anew (erased within the day's limit, else in a new review). Not
    before its verdict changed: the decision's events may not have been applied yet. And so
    does a clock still due of a subject who asked for erasure (``erasure_requested``): the
    brake lets it through, as the person asked."""
    if clock.state is ClockState.DUE:
        decided_away = not_approved and (clock.due_at, clock.rule) != (row.due_at, row.rule)
        if decided_away or erasure_requested:
            values["review_id"] = None
        elif row.state == AWAITING_REVIEW:
            values["state"] = AWAITING_REVIEW
    else:
        values["review_id"] = None


def _reviews_not_approved(connection: Connection, rows: Iterable[Row[Any]]) -> set[int]:
    """Of the reviews of these clock rows that await one, those decided otherwise than by an
    approval: applied by the purger (``extended``, ``held``), or recorded by the API and not
    applied yet."""
    review_ids = {row.review_id for row in rows if row.review_id is not None}
    if not review_ids:
        return set()
    applied = select(REVIEWS.c.id).where(
        one_of(connection, REVIEWS.c.id, review_ids), REVIEWS.c.state.in_(("extended", "held"))
    )
    recorded = select(DECISIONS.c.review_id).where(
        one_of(connection, DECISIONS.c.review_id, review_ids), DECISIONS.c.decision != "approve"
    )
    return set(connection.execute(union(applied, recorded)).scalars())


def _values(clock: RetentionClock) -> dict[str, Any]:
    return {
        "state": clock.state.value,
        "due_at": clock.due_at,
        "rule": clock.rule,
        "legal_basis": clock.legal_basis,
        "reason": clock.reason,
    }


def standing_hold_events(messages: list[LifecycleMessage]) -> set[UUID]:
    """The placements and releases of the subject's holds that still stand."""
    hold_events = [m for m in messages if m.type in HOLD_EVENT_TYPES]
    holds = Holds()
    for message in hold_events:
        holds.add(message)
    standing = holds.standing()
    return {m.event_id for m in hold_events if m.data.hold_id in standing}


def _forget_released_holds(connection: Connection, facts: list[LifecycleMessage]) -> None:
    """A subject without clocks keeps the events of its standing holds (a clock made later
    falls under them); once a placed hold is released, its events go. A release whose
    placement has not arrived yet stays: events come late and out of order."""
    standing = standing_hold_events(facts)
    holds = [m for m in facts if m.type in HOLD_EVENT_TYPES]
    placed = {m.data.hold_id for m in holds if m.type == LEGAL_HOLD_PLACED}
    released = [
        m.event_id for m in holds if m.data.hold_id in placed and m.event_id not in standing
    ]
    if released:
        connection.execute(delete(FACTS).where(one_of(connection, FACTS.c.event_id, released)))
