"""Applying lifecycle messages: store each new event as a fact of its subject and re-evaluate the
subject's clocks, in the batch's transaction (``handlers.py``), so that a message is either
applied (and its id recorded) or not at all. Redelivered messages are recognised by their event
id and skipped."""

import logging
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, func, select, union

from services.purger import subject_clocks
from services.purger.batch import PurgerBatch
from services.purger.policy_change_review import MadeDue
from shared.domain.contract.events import RETENTION_EXTENDED
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.domain.pseudonym import subject_hash
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.api import ReviewDecision
from shared.storage.tables.purger import ConsumedEvent, DispositionReview, ErasureProof
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CONSUMED = table_of(ConsumedEvent)
_PROOFS = table_of(ErasureProof)
_DECISIONS = table_of(ReviewDecision)
_REVIEWS = table_of(DispositionReview)


def apply_lifecycle(batch: PurgerBatch, messages: list[LifecycleMessage]) -> None:
    """The purger's handler of every lifecycle message: new events become facts, and their
    subjects' clocks are evaluated again."""
    connection, retention, now = batch.connection, batch.retention, batch.now
    # Before anything is read or stored: a sweep erasing one of these subjects finishes first,
    # and what follows sees its proofs; one that comes later sees these events; and another
    # consumer handed the same events (a rebalance) has recorded them.
    clocks_of = subject_clocks.lock_subjects(connection, {message.subject for message in messages})
    ids = {message.event_id for message in messages}
    # Consumed lately, or kept as a fact: consumed_event is pruned after a while
    # (prune.py), a fact is not while a clock needs it. An event whose fact went with an
    # erasure is recognised by the erasure's proof (_about_erased_data).
    fact_table = subject_clocks.FACTS
    already = union(
        select(_CONSUMED.c.event_id).where(one_of(connection, _CONSUMED.c.event_id, ids)),
        select(fact_table.c.event_id).where(one_of(connection, fact_table.c.event_id, ids)),
    )
    known = set(connection.execute(already).scalars().all())
    fresh: dict[UUID, LifecycleMessage] = {}
    for message in messages:
        if message.event_id not in known:
            fresh.setdefault(message.event_id, message)
    if not fresh:
        return
    # Dedupe records, facts and clocks go in by COPY on PostgreSQL (insert_rows): inserted row
    # by row, even pipelined, they took a third of the purger's CPU in a back-fill.
    insert_rows(
        connection, _CONSUMED, [{"event_id": event_id, "consumed_at": now} for event_id in fresh]
    )
    about_erased = _about_erased_data(connection, retention, list(fresh.values()))
    for event_id in about_erased | _unfounded_extensions(connection, list(fresh.values())):
        del fresh[event_id]
    if not fresh:
        return
    subjects = sorted({message.subject for message in fresh.values()})
    # The facts stored before this batch, in one query for all its subjects (read before this
    # batch's are stored, which are then added as they came: not read back and parsed again).
    facts_of = subject_clocks.load_facts_of(connection, subjects)
    for message in fresh.values():
        facts_of[message.subject].append(message)
    insert_rows(
        connection,
        subject_clocks.FACTS,
        [
            {
                "event_id": message.event_id,
                "subject_pseudonym": message.subject,
                "event_type": message.type,
                "message": message.to_json(),
            }
            for message in fresh.values()
        ],
    )
    erasable = 0
    new_clocks = subject_clocks.NewClockRows()  # one insert for the batch's new clocks
    # A subject whose clocks were stored under another policy may come here before the policy
    # refresh reaches it: what the change makes due waits with the refresh's.
    made_due = MadeDue(retention.policy, retention.digest, new_clocks=False)
    for subject in subjects:
        clocks = subject_clocks.reevaluate(
            connection,
            retention,
            subject,
            facts_of[subject],
            clocks_of[subject],
            now,
            new_clocks,
            made_due,
        )
        erasable += sum(1 for clock in clocks if clock.state in subject_clocks.ERASABLE)
    new_clocks.insert(connection)
    erasable -= made_due.gather(connection, now)
    batch.new_events += len(fresh)
    batch.erasable_clocks += erasable


def _unfounded_extensions(connection: Connection, messages: list[LifecycleMessage]) -> set[UUID]:
    """Extensions no DPO decided: a ``retention.extended`` whose ``review_id`` is not a review
    of its category the API recorded an ``extend`` decision on with the same ``until``.

    Only Gallring's review decisions send the type (the public intake refuses it), but the
    lifecycle topics are written by other hands than the API's too; an extension keeps data past
    its period, so one nobody decided is recorded as consumed and not kept, with a warning (its
    event id and review id: nothing of the subject)."""
    extensions = [m for m in messages if m.type == RETENTION_EXTENDED]
    if not extensions:
        return set()
    review_ids = {m.data.review_id for m in extensions if m.data.review_id is not None}
    decided = (
        {
            (row.review_id, row.category, row.until_date)
            for row in connection.execute(
                select(_DECISIONS.c.review_id, _REVIEWS.c.category, _DECISIONS.c.until_date)
                .join_from(_DECISIONS, _REVIEWS, _REVIEWS.c.id == _DECISIONS.c.review_id)
                .where(
                    one_of(connection, _DECISIONS.c.review_id, review_ids),
                    _DECISIONS.c.decision == "extend",
                )
            )
        }
        if review_ids
        else set()
    )
    unfounded = set()
    for message in extensions:
        data = message.data
        if (data.review_id, data.category.value, data.until) not in decided:
            log.warning(
                "purger: ignored retention.extended %s: review %s has no extend decision of %s "
                "until %s (only Gallring's review decisions send it)",
                message.event_id,
                data.review_id,
                data.category.value,
                data.until.isoformat(),
            )
            unfounded.add(message.event_id)
    return unfounded


def _about_erased_data(
    connection: Connection, retention: RetentionEngine, messages: list[LifecycleMessage]
) -> set[UUID]:
    """Late events that only concern clocks already erased, and happened before those erasures
    fell due (the unsubscribe, the end of the period).

    Events may arrive late and out of order. Once a clock is erased, its facts are gone, so a
    late event about the same data (a contact before the unsubscribe, a reopening before the
    close) would start the clock again from nothing: a second erasure, or data kept for good.
    Such an event is recorded as consumed and not kept; an event after the due time is new data
    and starts a new clock.
    """
    # The proofs of the batch's subjects first, by subject (the proofs' index is on it; a clock
    # hash names its subject anyway): most subjects of a batch, all of a back-fill's, have none,
    # and their events' clock keys need not be worked out and hashed.
    hash_of = {subject: subject_hash(subject) for subject in {m.subject for m in messages}}
    erased_as_of: dict[tuple[str, str], datetime] = {
        (hashed, clock): due_at
        for hashed, clock, due_at in connection.execute(
            select(_PROOFS.c.subject_hash, _PROOFS.c.clock_hash, func.max(_PROOFS.c.due_at))
            .where(one_of(connection, _PROOFS.c.subject_hash, set(hash_of.values())))
            .group_by(_PROOFS.c.subject_hash, _PROOFS.c.clock_hash)
        )
    }
    if not erased_as_of:
        return set()
    erased_subject_hashes = {hashed for hashed, _ in erased_as_of}
    late: set[UUID] = set()
    for message in messages:
        hashed = hash_of[message.subject]
        if hashed not in erased_subject_hashes:
            continue
        # One event at a time: an event that reaches every clock of its category (a broadcast)
        # then has no keys and is always kept, whatever else came in the same batch.
        keys = retention.clock_keys([message])[message.event_id]
        digests = [
            (hashed, subject_clocks.key_hash(message.subject, subject_clocks.routed_key(key)))
            for key in keys
        ]
        if digests and all(
            digest in erased_as_of and message.occurred_at <= erased_as_of[digest]
            for digest in digests
        ):
            late.add(message.event_id)
    if late:
        log.info("purger: %d late event(s) about already erased data not kept", len(late))
    return late
