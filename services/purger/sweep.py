"""The sweep: erase what fell due, a batch of clocks per transaction.

Due clocks come from the partial index on ``due_at``; on PostgreSQL they are locked with
``FOR UPDATE SKIP LOCKED``, so that several purgers share the work and none erases a clock
another holds. SQLite locks no rows: there the sweep holds the database's write lock from its
start (``begin_deciding``), and still erases a clock only if it is as it was read
(``subject_clocks.unchanged``), else the batch is rolled back and swept again later.

Two roads, in the same transaction. On PostgreSQL, settled subjects (all their clocks due in
this batch, verdicts reached under the running policy, never a legal hold) are erased by one
SQL statement (:mod:`settled_erasure`): the stored verdicts stand. Every other subject is
evaluated again from its facts: a legal hold or a reopened case that arrived since the clock was
stored wins over the stored verdict.

Before either road, the policy's review limits (``review:`` per category) are applied to the
batch: clocks past them are not erased but wait in a disposition review for a DPO's decision
(:mod:`disposition_review`).

Executing an erasure, in the one transaction: an erasure command and an erasure-executed event go
to the outbox, the clock becomes a proof that names no subject, the systems of the register that
hold its category are recorded as expected to confirm it (``expected_systems.py``), and the facts
no live clock of the subject needs any more are deleted. Each step is one statement for the whole
batch, not one per clock.
"""

import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine, Row, delete, func, select

from services.purger import disposition_review, expected_systems, settled_erasure, subject_clocks
from shared.domain.contract.erasure_messages import SCHEMA_VERSION, ErasureCommand, ErasureExecuted
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionClock, RetentionEngine
from shared.domain.pseudonym import subject_hash
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import begin_deciding, checkpoint_wal, one_of
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import SWEPT, ErasureProof
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CLOCKS = subject_clocks.CLOCKS
_FACTS = subject_clocks.FACTS
_PROOFS = table_of(ErasureProof)
_OUTBOX = table_of(OutboxMessage)


def sweep(db: Engine, retention: RetentionEngine, now: datetime, batch_size: int) -> int:
    """Erase every clock due at ``now``, batch by batch, as far as the policy's review limits
    allow (first the decisions on disposition reviews are applied, and the clocks of approved
    ones made due); how many were erased. After an erasure, SQLite's write-ahead log is
    emptied: it would keep the erased rows' pages otherwise."""
    disposition_review.settle_reviews(db, retention.policy, now, batch_size)
    erased, stopped = _sweep_batches(db, retention, now, batch_size)
    if stopped:
        log.warning(
            "purger: %d erasure(s) past the policy's review limits wait for a review "
            "(GET /v1/reviews?state=open)",
            stopped,
        )
    if erased and not checkpoint_wal(db):
        log.info(
            "purger: readers held SQLite's write-ahead log back; the next sweep that erases "
            "empties it"
        )
    return erased


def sweep_subjects(
    db: Engine, retention: RetentionEngine, now: datetime, subjects: Collection[str]
) -> int:
    """Erase what is due of these subjects alone, at once: the immediate lane's, whose
    unsubscribe must not wait for a sweep working through a back-fill's due clocks (it would
    come last: clocks are swept in due order). How many were erased; clocks another transaction
    holds are left to the next sweep.

    Should another purger take a category's day meanwhile (:class:`QuotaTaken`), the batch is
    swept again at once, counting theirs: rolled back, it took the subjects' immediate erasures
    with it, which must not wait for the next sweep for another category's limit."""
    for _ in range(_QUOTA_RETRIES):
        try:
            batch = sweep_batch(db, retention, now, max(len(subjects), 1), subjects=subjects)
            break
        except disposition_review.QuotaTaken as taken:
            log.info("purger: another purger took %s's day meanwhile; swept again", taken)
        except subject_clocks.ClockChanged:
            return 0
    else:
        return 0  # taken again and again: the next sweep
    if batch.erased:
        checkpoint_wal(db)  # as sweep() does; a reader holding it back: the next sweep does
    return batch.erased


#: How often the immediate lane sweeps its subjects again when other purgers took a day's
#: limit meanwhile: each time they committed erasures, which the next try counts.
_QUOTA_RETRIES = 5


def _sweep_batches(
    db: Engine, retention: RetentionEngine, now: datetime, batch_size: int
) -> tuple[int, int]:
    """How many clocks were erased, and how many stopped for a review."""
    erased = stopped = 0
    while True:
        try:
            batch = sweep_batch(db, retention, now, batch_size)
        except subject_clocks.ClockChanged:
            log.info("purger: a clock changed while the sweep read it; swept again next time")
            return erased, stopped
        except disposition_review.QuotaTaken as taken:
            log.info("purger: another purger took %s's day meanwhile; swept again", taken)
            continue  # the other's erasures are committed: counted now
        erased += batch.erased
        stopped += batch.stopped
        if batch.looked_at < batch_size or batch.looked_at == batch.skipped:
            return erased, stopped


@dataclass(frozen=True, slots=True)
class SweptBatch:
    looked_at: int
    erased: int
    skipped: int  # due, but another purger is working on their subject: left to the next sweep
    stopped: int = 0  # past the review limits: into a disposition review


def sweep_batch(
    db: Engine,
    retention: RetentionEngine,
    now: datetime,
    batch_size: int,
    *,
    subjects: Collection[str] | None = None,
) -> SweptBatch:
    """One transaction over up to ``batch_size`` due clocks (of ``subjects`` alone, if given:
    then on the general road, and only the clocks no other transaction holds). The clocks past
    the policy's review limits go into a review before anything is erased
    (:mod:`disposition_review`); the erasures that count against a day's limit are added to it
    at the end."""
    policy = retention.policy
    with begin_deciding(db) as connection:
        erased_ids: set[int] = set()
        if subjects is not None:
            query = _DUE.where(
                SWEPT,
                _CLOCKS.c.due_at <= now,
                one_of(connection, _CLOCKS.c.subject_pseudonym, subjects),
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = connection.execute(query).all()
            admission = disposition_review.admit(connection, policy, due, now)
            looked_at, due = len(due), _admitted(due, admission)
        elif connection.dialect.name == "postgresql":
            locked = settled_erasure.lock_due(connection, now, batch_size)
            if not locked:
                return SweptBatch(0, 0, 0)
            admission = disposition_review.admit(connection, policy, locked, now)
            looked_at, unsettled_ids = len(locked), admission.admitted
            if admission.admitted:
                settled = settled_erasure.erase_settled(
                    connection, admission.admitted, now, retention.digest
                )
                unsettled_ids = settled.unsettled_ids
                erased_ids = set(admission.admitted).difference(unsettled_ids)
            due = (
                connection.execute(
                    _DUE.where(one_of(connection, _CLOCKS.c.id, unsettled_ids))
                ).all()
                if unsettled_ids
                else []
            )
        else:
            query = _DUE.where(SWEPT, _CLOCKS.c.due_at <= now).limit(batch_size)
            due = connection.execute(query).all()
            admission = disposition_review.admit(connection, policy, due, now)
            looked_at, due = len(due), _admitted(due, admission)
        by_subject: dict[str, list[Row[Any]]] = defaultdict(list)
        for row in due:
            by_subject[row.subject_pseudonym].append(row)
        busy = _busy_subjects(connection, by_subject)
        for subject in busy:
            del by_subject[subject]
        facts = subject_clocks.load_facts_of(connection, by_subject)

        erasing: list[tuple[Row[Any], RetentionClock]] = []
        for subject, rows in by_subject.items():
            clocks = retention.evaluate(subject, facts[subject], now)
            digest = subject_clocks.verdict_digest(retention, facts[subject], now)
            by_key = {subject_clocks.clock_key(clock): clock for clock in clocks}
            for row in rows:
                clock = by_key.get(subject_clocks.row_key(row))
                if clock is not None and clock.state in subject_clocks.ERASABLE:
                    erasing.append((row, clock))
                else:  # held, reopened, or no longer fed by any fact: store the fresh verdict
                    fresh = [clock] if clock is not None else []
                    subject_clocks.store(
                        connection, subject, fresh, {subject_clocks.row_key(row): row}, now, digest
                    )
        if erasing:
            _execute(connection, erasing, now)
            erased_subjects = {row.subject_pseudonym for row, _ in erasing}
            _forget_unneeded_facts(connection, retention, {s: facts[s] for s in erased_subjects})
            erased_ids.update(row.id for row, _ in erasing)
        admission.record(connection, erased_ids, now)
        skipped = len(due) - sum(len(rows) for rows in by_subject.values())
        return SweptBatch(looked_at, len(erased_ids), skipped, admission.stopped)


#: Clocks in due order. On PostgreSQL, :mod:`settled_erasure` picks and locks them.
_DUE = select(_CLOCKS).order_by(_CLOCKS.c.due_at)


def _admitted(
    rows: Sequence[Row[Any]], admission: disposition_review.Admission
) -> Sequence[Row[Any]]:
    """The rows the review limits let through, in their order."""
    if len(admission.admitted) == len(rows):
        return rows
    admitted = set(admission.admitted)
    return [row for row in rows if row.id in admitted]


def _busy_subjects(connection: Connection, subjects: Collection[str]) -> set[str]:
    """Subjects of whose clocks another transaction holds one (PostgreSQL). Without all of them,
    what a subject's remaining clocks still need is not known, so the subject waits."""
    if connection.dialect.name != "postgresql" or not subjects:
        return set()  # SQLite: one writer at a time anyway
    subject = _CLOCKS.c.subject_pseudonym
    totals: dict[str, int] = dict(
        connection.execute(
            select(subject, func.count())
            .where(one_of(connection, subject, subjects))
            .group_by(subject)
        ).all()
    )
    locked: dict[str, int] = defaultdict(int)
    for (held_by_us,) in connection.execute(
        select(subject)
        .where(one_of(connection, subject, subjects))
        .with_for_update(skip_locked=True)
    ):
        locked[held_by_us] += 1
    return {s for s, total in totals.items() if locked[s] < total}


def _execute(
    connection: Connection, erasing: list[tuple[Row[Any], RetentionClock]], now: datetime
) -> None:
    outbox, proofs = [], []
    for row, clock in erasing:
        assert clock.due_at is not None  # erasable clocks always have one
        common = {
            "erasure_id": row.erasure_id,
            "category": clock.category,
            "scope": clock.scope_dict,
            "rule": clock.rule,
            "legal_basis": clock.legal_basis,
            "due_at": clock.due_at,
        }
        hashes = {
            "subject_hash": subject_hash(row.subject_pseudonym),
            "clock_hash": subject_clocks.key_hash(
                row.subject_pseudonym, subject_clocks.row_key(row)
            ),
        }
        command = ErasureCommand(event_id=uuid4(), **common, **hashes)
        executed = ErasureExecuted(event_id=uuid4(), executed_at=now, **common)
        for topic, message in ((topics.ERASURE_COMMANDS, command), (topics.ERASURES, executed)):
            outbox.append(
                outbox_row(
                    topic,
                    key=row.subject_pseudonym,
                    value=message.model_dump_json(),
                    event_type=message.type,
                    event_id=message.event_id,
                    schema_version=SCHEMA_VERSION,
                    now=now,
                )
            )
        proofs.append(
            {
                "erasure_id": row.erasure_id,
                **hashes,
                "category": clock.category.value,
                "rule": clock.rule,
                "legal_basis": clock.legal_basis,
                "due_at": clock.due_at,
                "executed_at": now,
            }
        )
    insert_rows(connection, _OUTBOX, outbox)
    insert_rows(connection, _PROOFS, proofs)
    expected_systems.record_expected(
        connection, [(row.erasure_id, clock.category.value) for row, clock in erasing], now
    )
    rows = [row for row, _ in erasing]
    erased = connection.execute(delete(_CLOCKS).where(subject_clocks.unchanged(connection, rows)))
    if erased.rowcount != len(rows):
        raise subject_clocks.ClockChanged()  # a hold or a reopening came in meanwhile


def _forget_unneeded_facts(
    connection: Connection,
    retention: RetentionEngine,
    facts: dict[str, list[LifecycleMessage]],
) -> None:
    """Delete the facts no remaining clock of their subject is fed by; all of a subject's when
    none is left, requests included. Holds still standing stay: a clock made later (a case
    back-filled after this erasure) falls under them too."""
    live: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    rows = connection.execute(
        select(
            _CLOCKS.c.subject_pseudonym,
            _CLOCKS.c.category,
            _CLOCKS.c.scope_key,
            _CLOCKS.c.scope_value,
        ).where(one_of(connection, _CLOCKS.c.subject_pseudonym, facts))
    )
    for subject, *key in rows:
        live[subject].add(tuple(key))
    unneeded: list[UUID] = []
    for subject, messages in facts.items():
        if subject not in live:
            keep = subject_clocks.standing_hold_events(messages)
            unneeded += [m.event_id for m in messages if m.event_id not in keep]
            continue
        for event_id, keys in retention.clock_keys(messages).items():
            if keys and not any(subject_clocks.routed_key(key) in live[subject] for key in keys):
                unneeded.append(event_id)
    if unneeded:
        connection.execute(delete(_FACTS).where(one_of(connection, _FACTS.c.event_id, unneeded)))
