"""The sweep: erase what fell due, a batch of clocks per transaction.

Due clocks come from the partial index on ``due_at``; on PostgreSQL they are locked with
``FOR UPDATE SKIP LOCKED``, so that several purgers share the work and none erases a clock
another holds. Each subject is evaluated again from its facts in the same transaction: a legal
hold or a reopened case that arrived since the clock was stored wins over the stored verdict.

Executing an erasure, in the one transaction: an erasure command and an erasure-executed event go
to the outbox, the clock becomes a proof that names no subject, and the facts no live clock of
the subject needs any more are deleted.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select

from services.purger import subject_clocks
from shared import topics
from shared.contract.erasure_messages import SCHEMA_VERSION, ErasureCommand, ErasureExecuted
from shared.contract.lifecycle_message import LifecycleMessage
from shared.engine import ClockState, RetentionClock, RetentionEngine
from shared.outbox import outbox_row
from shared.tables.outbox import OutboxMessage
from shared.tables.purger import SWEPT_STATES, ErasureProof

_CLOCKS = subject_clocks.CLOCKS
_FACTS = subject_clocks.FACTS
_PROOFS = ErasureProof.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_ERASABLE = (ClockState.DUE, ClockState.ERASE_NOW)


def sweep(db: Engine, retention: RetentionEngine, now: datetime, batch_size: int) -> int:
    """Erase every clock due at ``now``, batch by batch; how many were erased."""
    erased = 0
    while True:
        batch = sweep_batch(db, retention, now, batch_size)
        erased += batch.erased
        if batch.looked_at < batch_size or batch.looked_at == batch.skipped:
            return erased


@dataclass(frozen=True, slots=True)
class SweptBatch:
    looked_at: int
    erased: int
    skipped: int  # due, but another purger is working on their subject: left to the next sweep


def sweep_batch(
    db: Engine, retention: RetentionEngine, now: datetime, batch_size: int
) -> SweptBatch:
    """One transaction over up to ``batch_size`` due clocks."""
    with db.begin() as connection:
        query = (
            select(_CLOCKS)
            .where(_CLOCKS.c.state.in_(SWEPT_STATES), _CLOCKS.c.due_at <= now)
            .order_by(_CLOCKS.c.due_at)
            .limit(batch_size)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due = connection.execute(query).all()
        by_subject: dict[str, list[Row[Any]]] = defaultdict(list)
        for row in due:
            by_subject[row.subject_pseudonym].append(row)
        erased = skipped = 0
        for subject, rows in by_subject.items():
            if _subject_is_busy(connection, subject):
                skipped += len(rows)
            else:
                erased += _sweep_subject(connection, retention, subject, rows, now)
        return SweptBatch(len(due), erased, skipped)


def _subject_is_busy(connection: Connection, subject: str) -> bool:
    """Whether another transaction holds one of the subject's clocks (PostgreSQL). Without all of
    them, what the subject's remaining clocks still need is not known, so the subject waits."""
    if connection.dialect.name != "postgresql":
        return False  # SQLite: one writer at a time anyway
    of_subject = _CLOCKS.c.subject_pseudonym == subject
    total = connection.execute(select(func.count()).where(of_subject)).scalar_one()
    locked = connection.execute(
        select(_CLOCKS.c.id).where(of_subject).with_for_update(skip_locked=True)
    ).all()
    return len(locked) < total


def _sweep_subject(
    connection: Connection,
    retention: RetentionEngine,
    subject: str,
    due_rows: list[Row[Any]],
    now: datetime,
) -> int:
    facts = subject_clocks.load_facts(connection, subject)
    clocks = {subject_clocks.clock_key(c): c for c in retention.evaluate(subject, facts, now)}
    erased = 0
    for row in due_rows:
        clock = clocks.get(subject_clocks.row_key(row))
        if clock is not None and clock.state in _ERASABLE:
            _execute(connection, row, clock, now)
            erased += 1
        else:  # held, reopened, or no longer fed by any fact: store the fresh verdict
            fresh = [clock] if clock is not None else []
            subject_clocks.store(
                connection, subject, fresh, {subject_clocks.row_key(row): row}, now
            )
    if erased:
        _forget_unneeded_facts(connection, retention, subject, facts)
    return erased


def _execute(connection: Connection, row: Row[Any], clock: RetentionClock, now: datetime) -> None:
    assert clock.due_at is not None  # erasable clocks always have one
    common = {
        "erasure_id": row.erasure_id,
        "category": clock.category,
        "scope": clock.scope_dict,
        "rule": clock.rule,
        "legal_basis": clock.legal_basis,
        "due_at": clock.due_at,
    }
    command = ErasureCommand(event_id=uuid4(), **common)
    executed = ErasureExecuted(event_id=uuid4(), executed_at=now, **common)
    connection.execute(
        insert(_OUTBOX),
        [
            outbox_row(
                topic,
                key=row.subject_pseudonym,
                value=message.model_dump_json(),
                event_type=message.type,
                event_id=message.event_id,
                schema_version=SCHEMA_VERSION,
                now=now,
            )
            for topic, message in (
                (topics.ERASURE_COMMANDS, command),
                (topics.ERASURES, executed),
            )
        ],
    )
    connection.execute(
        insert(_PROOFS).values(
            erasure_id=row.erasure_id,
            subject_hash=subject_hash(row.subject_pseudonym),
            category=clock.category.value,
            rule=clock.rule,
            legal_basis=clock.legal_basis,
            due_at=clock.due_at,
            executed_at=now,
        )
    )
    connection.execute(delete(_CLOCKS).where(_CLOCKS.c.id == row.id))


def _forget_unneeded_facts(
    connection: Connection,
    retention: RetentionEngine,
    subject: str,
    facts: list[LifecycleMessage],
) -> None:
    """Delete the facts no remaining clock of the subject is fed by; all of them when none is
    left (holds and requests included: they only mattered for the clocks)."""
    live = set(
        connection.execute(
            select(_CLOCKS.c.category, _CLOCKS.c.scope_key, _CLOCKS.c.scope_value).where(
                _CLOCKS.c.subject_pseudonym == subject
            )
        ).all()
    )
    if not live:
        connection.execute(delete(_FACTS).where(_FACTS.c.subject_pseudonym == subject))
        return
    feeds = retention.clock_keys(facts)
    unneeded = [
        event_id
        for event_id, keys in feeds.items()
        if keys and not any(_row_key(key) in live for key in keys)
    ]
    if unneeded:
        connection.execute(delete(_FACTS).where(_FACTS.c.event_id.in_(unneeded)))


def _row_key(key: tuple[Any, tuple[str, str] | None]) -> tuple[str, str, str]:
    category, scope = key
    return (category.value, *(scope if scope is not None else ("", "")))


def subject_hash(pseudonym: str) -> str:
    """What a proof keeps of the subject: given the identifier, an auditor can recompute it."""
    return hashlib.sha256(pseudonym.encode()).hexdigest()
